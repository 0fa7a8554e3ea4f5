"""The review: one function, shared by the app, its API and `contract-review review`.

    contract = ingest.read_contract("nda.pdf")
    review = review_contract(contract, load_predictor(ModelSpec("default")), on_progress=print)
    review.to_dict()        # the JSON the CLI writes and the app's API returns

Steps, in the order data flows:
1. language and shape: `annotation.language` names the contract's language and
   `annotation.contract_signal` says whether it reads like a contract; either problem is
   a warning on the review (`Review.warnings`), never silent;
2. parties: `annotation.parties.extract_parties` reads them from the contract's opening;
3. segments: `annotation.segment.segment`, the dataset's segmenter, with character
   offsets, the contract's own numbers and headings; headings, addresses, signature
   blocks, bank details, contents and page furniture are kept as `Review.segments` and
   not labelled as clauses;
4. labels: the `Predictor` labels each clause (type, obligated party, risk, reason,
   confidence), in batches so a long review reports progress; a fragment (a list item)
   is given with its heading and lead-in, as in the dataset (`Segment.model_text`);
5. summary: counts by risk, the highest risks, parties, usual clauses that are missing.

A finding keeps its clause's offsets into `Review.text`, so every view (highlighted
contract, clause in context, reports) can show the clause where it is written; its
`text` is the clause's words with page furniture (`gaps`) cut out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from contract_review.annotation.contract_signal import contract_signal
from contract_review.annotation.language import detect_language
from contract_review.annotation.parties import Parties, extract_parties
from contract_review.annotation.segment import Segment, segment
from contract_review.predictor import ClauseInput, ClausePrediction, Predictor
from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .ingest import Contract

SCHEMA = "contract-review/review/1"
BATCH = 32  # clauses per predictor call: small enough for frequent progress, large enough to batch well
UNLABELLED_REASON = "The model's answer could not be read; review this clause by hand."

Progress = Callable[[int, int], None]  # (clauses labelled so far, clauses in all)


@dataclass
class Finding:
    """One clause and its labels. `corrected` is set when a reviewer changed the labels."""

    index: int  # 1-based position in the contract
    start: int
    end: int
    text: str
    clause_types: list[str]
    type_names: list[str]
    party: str  # first_party | second_party | both | none
    party_name: str  # the obligated party as named in the contract
    risk: str  # none | low | medium | high
    risk_category: str
    reason: str
    confidence: float
    is_risk: bool  # medium or high (the taxonomy's risk_positive)
    error: str | None = None  # the predictor could not label it (AnswerError kind)
    corrected: bool = False
    original: dict | None = None  # the model's labels, kept when corrected
    number: str | None = None  # the contract's own number: "Section 1.04", "6.02(b)"
    heading: str | None = None  # its heading as written: "Termination", "PERFORMANCE"
    context: str = ""  # the heading and lead-in above it ("6.02. Termination. ... terminated only:")
    gaps: list[list[int]] = field(default_factory=list)  # page furniture inside [start, end), not in `text`

    @property
    def clause_id(self) -> str:
        return f"{self.start}-{self.end}"

    @property
    def ref(self) -> str:
        """How a lawyer cites it: "6.02(b) Termination", or "Clause 14" when the contract numbers nothing."""
        return " ".join(p for p in (self.number, self.heading) if p) or f"Clause {self.index}"

    def answer(self) -> Answer:
        return Answer(tuple(self.clause_types), self.party, self.risk, self.risk_category, self.reason)


@dataclass
class Review:
    contract: dict  # name, kind, doc_id, sha1, chars, pages
    parties: dict  # first_party, second_party, aliases
    model: dict  # choice, name, model_version
    findings: list[Finding]
    summary: dict
    seconds: dict  # per step
    created_at: str
    text: str = field(repr=False, default="")
    schema: str = SCHEMA
    segments: list[dict] = field(default_factory=list)  # not clauses: kind, start, end, number, heading
    warnings: list[str] = field(default_factory=list)  # what a lawyer must know before trusting the labels

    def to_dict(self, include_text: bool = False) -> dict:
        d = {"schema": self.schema, "created_at": self.created_at, "contract": self.contract,
             "parties": self.parties, "model": self.model, "summary": self.summary, "seconds": self.seconds,
             "warnings": self.warnings, "findings": [asdict(f) for f in self.findings], "segments": self.segments}
        if include_text:
            d["text"] = self.text
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Review":
        return cls(contract=d["contract"], parties=d["parties"], model=d["model"],
                   findings=[Finding(**f) for f in d["findings"]], summary=d["summary"], seconds=d["seconds"],
                   created_at=d["created_at"], text=d.get("text", ""), schema=d.get("schema", SCHEMA),
                   segments=d.get("segments", []), warnings=d.get("warnings", []))

    def finding(self, index: int) -> Finding:
        return self.findings[index - 1]

    @property
    def party_names(self) -> dict[str, str]:
        return {"first_party": self.parties.get("first_party", ""),
                "second_party": self.parties.get("second_party", "")}


def party_display(role: str, parties: dict, tax: Taxonomy | None = None) -> str:
    """The obligated party as the contract names it ("Acme Corp."), for a role label."""
    first = parties.get("first_party") or "the first party"
    second = parties.get("second_party") or "the second party"
    if role == "first_party":
        return first
    if role == "second_party":
        return second
    if role == "both":
        return f"both ({first} and {second})"
    return "no one"


def finding_from(index: int, seg: Segment, pred: ClausePrediction, parties: dict, tax: Taxonomy) -> Finding:
    if pred.answer is None:
        answer = Answer(("other",), "none", "none", "none", UNLABELLED_REASON)
    else:
        answer = pred.answer
    return Finding(
        index=index, start=seg.start, end=seg.end, text=seg.clean,
        number=seg.number, heading=seg.heading, context=seg.context, gaps=[list(g) for g in seg.gaps],
        clause_types=list(answer.clause_types),
        type_names=[tax.clause_type(t).name for t in answer.clause_types],
        party=answer.party, party_name=party_display(answer.party, parties, tax),
        risk=answer.risk, risk_category=answer.risk_category, reason=answer.reason,
        confidence=round(float(pred.confidence), 4), is_risk=tax.is_risk_clause(answer.risk),
        error=pred.error if pred.answer is None else None,
    )


def predict_batched(predictor: Predictor, inputs: Sequence[ClauseInput], on_progress: Progress | None = None,
                    batch: int = BATCH) -> list[ClausePrediction]:
    out: list[ClausePrediction] = []
    if on_progress:
        on_progress(0, len(inputs))
    for i in range(0, len(inputs), batch):
        chunk = list(inputs[i : i + batch])
        preds = predictor.predict(chunk)
        if len(preds) != len(chunk):
            raise RuntimeError(f"predictor {predictor.name} returned {len(preds)} predictions for {len(chunk)} clauses")
        out.extend(preds)
        if on_progress:
            on_progress(len(out), len(inputs))
    return out


def review_contract(contract: Contract, predictor: Predictor, on_progress: Progress | None = None,
                    model_choice: str = "", tax: Taxonomy | None = None) -> Review:
    """Review one contract: parties, clauses, labels, summary. Never logs the contract's text."""
    from .summary import summarize

    tax = tax or load_taxonomy()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    language = detect_language(contract.text)
    shape = contract_signal(contract.text)
    warnings = [w for w in (language.warning(),) if w]
    if not shape.looks_like_contract:
        warnings.append("This text does not read like a contract: " + "; ".join(shape.reasons) + ".")
    parties: Parties = extract_parties(contract.text)
    party_info = {"first_party": parties.first_party, "second_party": parties.second_party,
                  "aliases": {k: list(v) for k, v in parties.aliases.items()}}
    segments = segment(contract.text, furniture=True)
    clauses = [s for s in segments if s.is_clause]
    seconds["segment"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    names = parties.names()
    preds = predict_batched(predictor, [ClauseInput(s.model_text, names) for s in clauses], on_progress)
    seconds["predict"] = round(time.perf_counter() - t1, 3)

    findings = [finding_from(i, s, p, party_info, tax) for i, (s, p) in enumerate(zip(clauses, preds), start=1)]
    others = [{"kind": s.kind, "start": s.start, "end": s.end, "number": s.number, "heading": s.heading}
              for s in segments if not s.is_clause]
    t2 = time.perf_counter()
    summary = summarize(findings, party_info, tax)
    seconds["summary"] = round(time.perf_counter() - t2, 3)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    return Review(
        contract={"name": contract.name, "kind": contract.kind, "doc_id": contract.doc_id, "sha1": contract.sha1,
                  "chars": len(contract.text), "pages": contract.pages, "clauses": len(findings),
                  "language": language.to_dict(), "shape": shape.to_dict()},
        parties=party_info,
        model={"choice": model_choice or predictor.name, "name": predictor.name,
               "model_version": predictor.model_version},
        findings=findings, summary=summary, seconds=seconds,
        created_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        text=contract.text, segments=others, warnings=warnings,
    )


def apply_correction(review: Review, index: int, clause_types: Sequence[str], party: str, risk: str,
                     reason: str | None = None, tax: Taxonomy | None = None) -> Finding:
    """Change one finding's labels (validated against the taxonomy) and refresh the summary.
    Risk category and an empty reason come from the taxonomy row of the riskiest chosen type."""
    from .summary import summarize

    tax = tax or load_taxonomy()
    types = tax.order_types(tax.check("clause_type", t) for t in clause_types)
    tax.check("party", party)
    tax.check("risk", risk)
    top = tax.clause_type(types[0])
    f = review.finding(index)
    if not f.corrected:
        f.original = {"clause_types": list(f.clause_types), "party": f.party, "risk": f.risk,
                      "risk_category": f.risk_category, "reason": f.reason, "confidence": f.confidence}
    default_reason = tax.default_reason(top.id)
    reason = (reason or "").strip()
    if not reason or (reason == f.reason and types != f.clause_types):
        reason = default_reason  # the old reason explained the old type
    f.clause_types = types
    f.type_names = [tax.clause_type(t).name for t in types]
    f.party, f.party_name = party, party_display(party, review.parties, tax)
    f.risk = risk
    f.risk_category = top.risk_category if risk != "none" else "none"
    if risk != "none" and f.risk_category == "none":
        f.risk_category = f.original.get("risk_category", "none") if f.original else "none"
    f.reason = reason
    f.is_risk = tax.is_risk_clause(risk)
    f.error = None
    f.corrected = True
    review.summary = summarize(review.findings, review.parties, tax)
    return f
