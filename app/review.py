"""The review: one function, shared by the app, its API and `contract-review review`.

    contract = ingest.read_contract("nda.pdf")
    review = review_contract(contract, load_predictor(ModelSpec("default")), on_progress=print,
                             represent="second_party")
    review.to_dict()        # the JSON the CLI writes and the app's API returns

Steps, in the order data flows:
1. language and shape: `annotation.language` names the contract's language and
   `annotation.contract_signal` says whether it reads like a contract. Either problem stops
   the review with `NeedsConfirmation` (a question for the user) unless `anyway` is given;
   a review made anyway carries the warning and claims nothing it could not check;
2. parties: `annotation.parties.contract_parties`, the one party list per contract, with
   aliases; a template blank ("[•]") stays a blank, shown as such;
3. segments: `annotation.segment.segment`, the dataset's segmenter, with character
   offsets, the contract's own numbers and headings; headings, addresses, signature
   blocks, bank details, contents and page furniture are kept as `Review.segments` and
   not labelled as clauses;
4. labels: the `Predictor` labels each clause (type, obligated party, who bears the risk,
   severity, reason, confidence), in batches so a long review reports progress and can be
   cancelled (`app.jobs`); a fragment (a list item) is given with its heading and lead-in;
   the reason is completed with the clause's own key terms (`app.reasons`);
5. summary: counts by risk, the highest risks (overall and for the represented party),
   the usual clauses found or not, and what was checked (`app.summary`).

A finding keeps its clause's offsets into `Review.text`, so every view (highlighted
contract, clause in context, reports) can show the clause where it is written; its
`text` is the clause's words with page furniture (`gaps`) cut out; `ref` cites it as the
contract does ("Section 1.04 PERFORMANCE"), `page` is its page in a PDF.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from contract_review.annotation.contract_signal import contract_signal
from contract_review.annotation.language import detect_language
from contract_review.annotation.parties import ROLES, contract_parties
from contract_review.annotation.segment import Segment, segment
from contract_review.predictor import ClauseInput, ClausePrediction, Predictor
from contract_review.prompt import Answer
from contract_review.taxonomy import Taxonomy, load_taxonomy

from .ingest import Contract
from .reasons import NOT_ASSESSED, clause_reason, masked_span, party_label, resolve_party, role_name

SCHEMA = "contract-review/review/2"
BATCH = 8  # clauses per predictor call: a cancel, or a short review behind a long one, waits for one batch
# (a batch of 32 took 167 s with the reviewer alone on two busy cores: far too long to wait)
UNLABELLED_REASON = "The model's answer could not be read; review this clause by hand."

Progress = Callable[[int, int], None]  # (clauses labelled so far, clauses in all)


class NeedsConfirmation(ValueError):
    """The text is not something the reviewer can judge (another language, not a contract): the
    message is the question to put to the user; `review_contract(..., anyway=True)` goes on."""

    def __init__(self, message: str, reasons: list[str]):
        super().__init__(message)
        self.reasons = reasons


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
    page: int | None = None  # a PDF's page the clause starts on
    risk_to: str | None = None  # who bears the risk (a role); None: the model did not say (not assessed)
    risk_to_name: str = NOT_ASSESSED  # that party as the contract names it
    severity: str | None = None  # how severe for the bearer; None with risk_to None
    key_terms: list[dict] = field(default_factory=list)  # kind, text, start, end (offsets into the contract)

    @property
    def clause_id(self) -> str:
        return f"{self.start}-{self.end}"

    @property
    def ref(self) -> str:
        """How a lawyer cites it: "6.02(b) Termination"; a heading alone or our count when unnumbered."""
        if self.number:
            return " ".join(p for p in (self.number, self.heading) if p)
        if self.heading:
            return f"{self.heading} (unnumbered paragraph)"
        return f"Unnumbered paragraph {self.index}"

    @property
    def where(self) -> str:
        """The citation with the page of a PDF: "Section 1.04 PERFORMANCE, page 2"."""
        return f"{self.ref}, page {self.page}" if self.page else self.ref

    def answer(self) -> Answer:
        return Answer(tuple(self.clause_types), self.party, self.risk, self.risk_category, self.reason,
                      risk_to=self.risk_to)

    def to_dict(self) -> dict:
        return {**asdict(self), "ref": self.ref}


@dataclass
class Review:
    contract: dict  # name, kind, doc_id, sha1, chars, pages, language, shape
    parties: dict  # first_party, second_party (labels as shown), aliases, list (the contract's party list)
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
             "warnings": self.warnings, "findings": [f.to_dict() for f in self.findings], "segments": self.segments}
        if include_text:
            d["text"] = self.text
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Review":
        findings = [Finding(**{k: v for k, v in f.items() if k != "ref"}) for f in d["findings"]]
        return cls(contract=d["contract"], parties=d["parties"], model=d["model"], findings=findings,
                   summary=d["summary"], seconds=d["seconds"], created_at=d["created_at"], text=d.get("text", ""),
                   schema=d.get("schema", SCHEMA), segments=d.get("segments", []), warnings=d.get("warnings", []))

    def finding(self, index: int) -> Finding:
        return self.findings[index - 1]

    @property
    def party_names(self) -> dict[str, str]:
        """The two roles as the model reads them (the dataset's `party_names`)."""
        return dict(self.parties.get("model_names") or {r: self.parties.get(r, "") for r in ROLES})

    @property
    def assessed(self) -> bool:
        """Whether the labels can be read as a review: an English contract, reviewed to its end."""
        return bool(self.summary.get("assessed", True))


def party_display(role: str | None, parties: dict, tax: Taxonomy | None = None) -> str:
    """A role named as in this contract ("Acme Corp.", "both (...)", "no one"; None: "not assessed")."""
    labels = {r: parties.get(r) or f"the {r.split('_')[0]} party" for r in ROLES}
    return role_name(role, labels)


def _party_info(text: str) -> dict:
    plist = contract_parties(text)
    listed = plist.as_dict()["parties"]
    while len(listed) < 2:
        listed.append({"role": ROLES[len(listed)], "name": "", "aliases": [], "blank": False,
                       "found_in": ["not_found"]})
    labels = {role: party_label(listed[i], role) for i, role in enumerate(ROLES)}
    aliases = plist.aliases()
    return {**labels, "aliases": {r: list(aliases.get(r, [])) for r in ROLES}, "list": listed,
            "model_names": plist.names(), "kind": plist.kind}


def _party_terms(parties: dict) -> list[str]:
    terms = []
    for p in parties.get("list", []):
        if p.get("name") and not p.get("blank"):
            terms.append(p["name"])
        terms += p.get("aliases", [])
    return [t for t in dict.fromkeys(terms) if t]


def finding_from(index: int, seg: Segment, pred: ClausePrediction, parties: dict, tax: Taxonomy,
                 contract: Contract | None = None, text: str | None = None) -> Finding:
    if pred.answer is None:
        answer = Answer(("other",), "none", "none", "none", UNLABELLED_REASON)
        reason, terms = UNLABELLED_REASON, []
    else:
        answer = pred.answer
        source = text if text is not None else seg.text
        offset = 0 if text is not None else seg.start
        clause = masked_span(source, seg.start - offset, seg.end - offset,
                             [(a - offset, b - offset) for a, b in seg.gaps])
        reason, terms = clause_reason(answer, clause, seg.start, _party_terms(parties), tax)
    types = tax.order_types(answer.clause_types)
    assessed = answer.risk_to is not None
    return Finding(
        index=index, start=seg.start, end=seg.end, text=seg.clean,
        number=seg.number, heading=seg.heading, context=seg.context, gaps=[list(g) for g in seg.gaps],
        page=contract.page_of(seg.start) if contract else None,
        clause_types=types, type_names=[tax.clause_type(t).name for t in types],
        party=answer.party, party_name=party_display(answer.party, parties, tax),
        risk=answer.risk, risk_category=answer.risk_category, reason=reason,
        confidence=round(float(pred.confidence), 4), is_risk=tax.is_risk_clause(answer.risk),
        error=pred.error if pred.answer is None else None,
        risk_to=answer.risk_to, risk_to_name=party_display(answer.risk_to, parties, tax),
        severity=answer.severity if assessed else None, key_terms=terms,
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


def preflight(contract: Contract) -> tuple[dict, dict, list[str], list[str]]:
    """Language and shape of a contract: (language, shape, warnings, what stops a review unless confirmed)."""
    language = detect_language(contract.text)
    shape = contract_signal(contract.text)
    warnings, blockers = [], []
    if language.warning():
        warnings.append(language.warning())
        if not language.supported and language.language != "en":
            blockers.append(language.warning())
    if not shape.looks_like_contract:
        note = "This text does not read like a contract: " + "; ".join(shape.reasons) + "."
        warnings.append(note)
        blockers.append(note)
    return language.to_dict(), shape.to_dict(), warnings, blockers


def review_contract(contract: Contract, predictor: Predictor, on_progress: Progress | None = None,
                    model_choice: str = "", tax: Taxonomy | None = None, represent: str | None = None,
                    anyway: bool = False) -> Review:
    """Review one contract: parties, clauses, labels, summary. Never logs the contract's text.

    Raises `NeedsConfirmation` for a text in another language or not like a contract (unless
    `anyway`), ValueError for a `represent` that names no party of the contract, and whatever the
    predictor raises (`app.jobs.ReviewStopped` for a cancelled or over-budget review)."""
    from .summary import summarize

    tax = tax or load_taxonomy()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    language, shape, warnings, blockers = preflight(contract)
    if blockers and not anyway:
        raise NeedsConfirmation(" ".join(blockers) + " Review it anyway?", blockers)
    party_info = _party_info(contract.text)
    resolve_party(represent, party_info["list"])  # a name the contract does not use fails before the model runs
    segments = segment(contract.text, furniture=True)
    clauses = [s for s in segments if s.is_clause]
    seconds["segment"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    names = party_info["model_names"]
    aliases, tos = party_info["aliases"], party_info["kind"] == "terms_of_service"
    preds = predict_batched(predictor, [ClauseInput(s.model_text, names, aliases, tos) for s in clauses], on_progress)
    seconds["predict"] = round(time.perf_counter() - t1, 3)

    findings = [finding_from(i, s, p, party_info, tax, contract, contract.text)
                for i, (s, p) in enumerate(zip(clauses, preds), start=1)]
    others = [{"kind": s.kind, "start": s.start, "end": s.end, "number": s.number, "heading": s.heading}
              for s in segments if not s.is_clause]
    t2 = time.perf_counter()
    assessed = not blockers and bool(findings)
    summary = summarize(findings, party_info, tax, represent=represent, text=contract.text, segments=others,
                        assessed=assessed, not_assessed_why=" ".join(blockers) or "no clause was found")
    seconds["summary"] = round(time.perf_counter() - t2, 3)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    return Review(
        contract={"name": contract.name, "kind": contract.kind, "doc_id": contract.doc_id, "sha1": contract.sha1,
                  "chars": len(contract.text), "pages": contract.pages, "clauses": len(findings),
                  "encoding": contract.encoding, "language": language, "shape": shape},
        parties=party_info,
        model={"choice": model_choice or predictor.name, "name": predictor.name,
               "model_version": predictor.model_version},
        findings=findings, summary=summary, seconds=seconds,
        created_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        text=contract.text, segments=others, warnings=warnings,
    )


def refresh_summary(review: Review, represent: str | None = None, tax: Taxonomy | None = None) -> dict:
    """Recompute the summary (after a correction, or for another represented party: no model run)."""
    from .summary import summarize

    if represent is None:
        represent = (review.summary.get("represent") or {}).get("role")
    review.summary = summarize(review.findings, review.parties, tax or load_taxonomy(), represent=represent,
                               text=review.text, segments=review.segments, assessed=review.assessed,
                               not_assessed_why=review.summary.get("not_assessed_why", ""))
    return review.summary


def apply_correction(review: Review, index: int, clause_types: Sequence[str], party: str, risk: str,
                     reason: str | None = None, tax: Taxonomy | None = None, risk_to: str | None = None) -> Finding:
    """Change one finding's labels (validated against the taxonomy) and refresh the summary.
    Risk category and an empty reason come from the taxonomy row of the riskiest chosen type;
    the bearer stays as it was unless given (a risk of none has none)."""
    tax = tax or load_taxonomy()
    types = tax.order_types(tax.check("clause_type", t) for t in clause_types)
    tax.check("party", party)
    tax.check("risk", risk)
    if risk_to is not None:
        tax.check("risk_to", risk_to)
    top = tax.clause_type(types[0])
    f = review.finding(index)
    if not f.corrected:
        f.original = {"clause_types": list(f.clause_types), "party": f.party, "risk": f.risk,
                      "risk_category": f.risk_category, "reason": f.reason, "confidence": f.confidence,
                      "risk_to": f.risk_to, "severity": f.severity}
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
    bearer = risk_to if risk_to is not None else f.risk_to
    if risk == "none":
        bearer = "none"
    elif bearer == "none":
        bearer = None  # a risk now, and nobody said whose
    f.risk_to, f.risk_to_name = bearer, party_display(bearer, review.parties, tax)
    f.severity = risk if bearer is not None else None
    f.reason = reason
    f.is_risk = tax.is_risk_clause(risk)
    f.error = None
    f.corrected = True
    refresh_summary(review, tax=tax)
    return f
