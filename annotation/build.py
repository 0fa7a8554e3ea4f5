"""Build the clause dataset from the CUAD and CLAUDETTE corpora.

    records = build_records(cuad_dir, claudette_dir)     # labelled clauses with splits
    write_dataset(records, out_dir)                       # train/validation/test JSONL

CUAD: every contract is segmented (`segment.segment`) and each clause segment is a record
(headings, addresses, signature blocks, bank details and tables of contents are not
clauses, so not records); its `text` is the clause without page furniture, and the model
input gives a fragment (a list item, a paragraph under a heading) the heading and lead-in
it needs (`Segment.model_text`). A clause takes a CUAD category when a lawyer's span
covers at least half of the shorter of the two (so a span inside a long clause, or a
clause inside a long span, both count); clauses no span touches become `other`. Risk
comes from the taxonomy's category table. CLAUDETTE: one record per
sentence, LexGLUE's labels, the experts' fairness level as risk.

Splits are by document: CUAD contracts (near-duplicate contracts grouped first) are
hashed into train/validation/test 80/10/10; CLAUDETTE follows LexGLUE's company split.
A clause that duplicates (exactly or nearly) a clause of a later split is dropped from
the earlier one (train < validation < test), so evaluation sets stay whole and nothing
leaks. Verified obligated-party labels (`data/party_verified.jsonl`) override the rule
pre-labeller. The output is a pure function of the inputs: two runs give identical bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from contract_review.prompt import INSTRUCTION, SYSTEM, Answer, build_input
from contract_review.records import SPLITS, ClauseRecord, RecordError, iter_jsonl, write_jsonl
from contract_review.taxonomy import Taxonomy, load_taxonomy

from . import claudette, cuad
from .dedup import MinHasher, jaccard, near_duplicate_pairs, shingles
from .obligation import label_obligation
from .parties import from_cuad, terms_of_service
from .segment import normalize, segment

SPLIT_SHARES = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
_LEVEL_RISK = {1: "low", 2: "medium", 3: "high"}
_LEVEL_WORDS = {1: "fair as written", 2: "potentially unfair", 3: "clearly unfair"}


@dataclass
class BuildReport:
    documents: Counter = field(default_factory=Counter)
    records: Counter = field(default_factory=Counter)
    dropped_duplicates: Counter = field(default_factory=Counter)
    cuad_spans_located: int = 0
    cuad_spans_missed: int = 0
    claudette_unaligned: int = 0
    verified_applied: int = 0
    verified_stale: int = 0
    # (rule pre-label, verified label) -> count: the pre-labeller's accuracy, always current
    prelabel_vs_verified: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "documents": dict(sorted(self.documents.items())),
            "records": dict(sorted(self.records.items())),
            "dropped_duplicates": dict(sorted(self.dropped_duplicates.items())),
            "cuad_spans_located": self.cuad_spans_located,
            "cuad_spans_missed": self.cuad_spans_missed,
            "claudette_unaligned": self.claudette_unaligned,
            "verified_applied": self.verified_applied,
            "verified_stale": self.verified_stale,
            "prelabel_vs_verified": {f"{a}->{b}": n for (a, b), n in sorted(self.prelabel_vs_verified.items())},
        }


def _hash_split(key: str) -> str:
    x = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    acc = 0.0
    for name, share in SPLIT_SHARES:
        acc += share
        if x < acc:
            return name
    return SPLIT_SHARES[-1][0]


def _labels(tax: Taxonomy, types: Iterable[str], level: int | None = None) -> tuple[list[str], str, str, str]:
    """Order clause types by risk (highest first); derive risk, category and reason."""
    types = tax.order_types(types)
    top = tax.clause_type(types[0])
    if level is not None:
        risk = _LEVEL_RISK[level]
        reason = f"{top.name} ({_LEVEL_WORDS[level]}): {top.reason}"
    else:
        risk = top.risk
        reason = tax.default_reason(top.id)
    category = top.risk_category if risk != "none" else "none"
    return types, risk, category, reason


def _record(tax, *, source, doc_id, split, start, end, text, types, party, party_names, level=None,
            model_text: str | None = None) -> dict:
    types, risk, category, reason = _labels(tax, types, level)
    clean = normalize(text)
    answer = Answer(tuple(types), party, risk, category, reason)
    rec = {
        "id": f"{source}/{doc_id}/{start}-{end}",
        "system": SYSTEM,
        "instruction": INSTRUCTION,
        "input": build_input(model_text or clean, party_names),
        "output": answer.to_json(),
        "source": source,
        "doc_id": doc_id,
        "split": split,
        "start": start,
        "end": end,
        "text": clean,
        "clause_types": types,
        "party": party,
        "party_names": party_names,
        "risk": risk,
        "risk_category": category,
        "reason": reason,
        "party_labeller": "rules",
        "verified": False,
    }
    if level is not None:
        rec["fairness"] = level
    return rec


def _cuad_splits(contracts: list[cuad.CuadContract]) -> dict[str, str]:
    """Group near-duplicate contracts (re-filed copies, amendments of one text), then hash."""
    hasher = MinHasher(num_perm=64, bands=32)
    parent = list(range(len(contracts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sh = [shingles(c.text[:20000], k=5) for c in contracts]
    buckets: dict[bytes, list[int]] = defaultdict(list)
    for i, s in enumerate(sh):
        for key in hasher.band_keys(hasher.signature(s)):
            buckets[key].append(i)
    for members in buckets.values():
        for j in members[1:]:
            if jaccard(sh[members[0]], sh[j]) >= 0.5:
                parent[find(j)] = find(members[0])
    group_key: dict[int, str] = {}
    for i, c in enumerate(contracts):
        root = find(i)
        group_key[root] = min(group_key.get(root, c.doc_id), c.doc_id)
    return {c.doc_id: _hash_split(group_key[find(i)]) for i, c in enumerate(contracts)}


def cuad_records(cuad_dir: Path, tax: Taxonomy, report: BuildReport, progress: bool = True,
                 model_texts: dict[str, str] | None = None) -> list[dict]:
    """Records of every CUAD clause; `model_texts` (id -> the text the input gives the model, a
    fragment with its context) is filled when given, to rebuild an input for other party names."""
    by_cuad = tax.by_cuad()
    contracts = list(tqdm(cuad.iter_contracts(cuad_dir), desc="CUAD contracts", disable=not progress, total=None))
    splits = _cuad_splits(contracts)
    out = []
    for c in tqdm(contracts, desc="CUAD clauses", disable=not progress):
        report.documents[f"cuad/{splits[c.doc_id]}"] += 1
        report.cuad_spans_missed += c.missed_spans
        report.cuad_spans_located += len(c.spans)
        parties = from_cuad(c.text, c.parties)
        names = parties.names()
        for seg in segment(c.text):
            if not seg.is_clause:
                continue
            types = set()
            for s, e, cat in c.spans:
                if e <= seg.start or s >= seg.end:
                    continue
                overlap = min(e, seg.end) - max(s, seg.start)
                if overlap >= 0.5 * min(e - s, seg.end - seg.start):
                    types.add(by_cuad[cat].id)
            party = label_obligation(seg.clean, parties).party
            out.append(
                _record(tax, source="cuad", doc_id=c.doc_id, split=splits[c.doc_id], start=seg.start, end=seg.end,
                        text=seg.clean, types=types, party=party, party_names=names, model_text=seg.model_text)
            )
            if model_texts is not None:
                model_texts[out[-1]["id"]] = seg.model_text
    return out


def claudette_records(root: Path, tax: Taxonomy, report: BuildReport, progress: bool = True) -> list[dict]:
    by_code = tax.by_claudette()
    out = []
    for doc in tqdm(claudette.iter_documents(root), desc="CLAUDETTE companies", disable=not progress):
        report.documents[f"claudette/{doc.split}"] += 1
        parties = terms_of_service(doc.company)
        names = parties.names()
        for s in doc.sentences:
            report.claudette_unaligned += not s.aligned
            unfair = {code: s.levels.get(code, 2) for code in s.labels}  # LexGLUE's 1 = level 2 or 3
            unfair = {code: max(lvl, 2) for code, lvl in unfair.items()}
            fair = {code for code, lvl in s.levels.items() if lvl == 1 and code not in unfair}
            types = {by_code[c].id for c in unfair} | {by_code[c].id for c in fair}
            level = max(unfair.values()) if unfair else (1 if fair else None)
            out.append(
                _record(tax, source="claudette", doc_id=doc.company, split=doc.split, start=s.start, end=s.end,
                        text=s.text, types=types, party=label_obligation(s.text, parties).party,
                        party_names=names, level=level)
            )
    return out


def drop_cross_split_duplicates(records: list[dict], report: BuildReport) -> list[dict]:
    rank = {name: i for i, name in enumerate(SPLITS)}
    pairs = near_duplicate_pairs([r["text"] for r in records], groups=[rank[r["split"]] for r in records])
    drop = set()
    for i, j in pairs:
        loser = i if rank[records[i]["split"]] < rank[records[j]["split"]] else j
        drop.add(loser)
    for i in drop:
        report.dropped_duplicates[records[i]["split"]] += 1
    return [r for i, r in enumerate(records) if i not in drop]


def apply_verified(records: list[dict], verified_file: Path | None, report: BuildReport,
                   model_texts: dict[str, str] | None = None) -> None:
    """Overlay checked obligated-party labels; a label whose clause text changed is stale.
    `model_texts` gives the clause as the input shows it (with its context), where it differs."""
    if verified_file is None or not verified_file.exists():
        return
    tax = load_taxonomy()
    by_id = {r["id"]: r for r in records}
    for lineno, v in iter_jsonl(verified_file):
        for key in ("id", "party", "labeller", "text_sha1"):
            if key not in v:
                raise RecordError(f"{verified_file}:{lineno}: missing {key!r}")
        try:
            tax.check("party", v["party"])
        except ValueError as exc:
            raise RecordError(f"{verified_file}:{lineno}: {exc}") from None
        rec = by_id.get(v["id"])
        if rec is None or hashlib.sha1(rec["text"].encode()).hexdigest() != v["text_sha1"]:
            report.verified_stale += 1
            continue
        report.prelabel_vs_verified[(rec["party"], v["party"])] += 1
        rec["party"] = v["party"]
        rec["verified"] = True
        rec["labeller"] = v["labeller"]
        if "party_names" in v:
            # the label answers "first or second party?" for the names the checker was shown
            rec["party_names"] = v["party_names"]
            rec["input"] = build_input((model_texts or {}).get(rec["id"], rec["text"]), v["party_names"])
        ans = json.loads(rec["output"])
        ans["party"] = v["party"]
        rec["output"] = json.dumps(ans, ensure_ascii=False)
        report.verified_applied += 1


def build_records(
    cuad_dir: Path | None,
    claudette_dir: Path | None,
    verified_file: Path | None = None,
    progress: bool = True,
) -> tuple[list[ClauseRecord], BuildReport]:
    if cuad_dir is None and claudette_dir is None:
        raise ValueError("nothing to build: give --cuad DIR, --claudette DIR or both")
    tax = load_taxonomy()
    report = BuildReport()
    raw: list[dict] = []
    model_texts: dict[str, str] = {}
    if cuad_dir is not None:
        raw += cuad_records(Path(cuad_dir), tax, report, progress, model_texts)
    if claudette_dir is not None:
        raw += claudette_records(Path(claudette_dir), tax, report, progress)
    raw = drop_cross_split_duplicates(raw, report)
    apply_verified(raw, verified_file, report, model_texts)
    raw.sort(key=lambda r: (r["source"], r["doc_id"], r["start"], r["end"]))
    records = [ClauseRecord.model_validate(r) for r in tqdm(raw, desc="validating", disable=not progress)]
    for r in records:
        report.records[f"{r.source}/{r.split}"] += 1
    return records, report


def write_dataset(records: list[ClauseRecord], out_dir: Path, report: BuildReport, compress: bool = False) -> list[Path]:
    out_dir = Path(out_dir)
    suffix = ".jsonl.gz" if compress else ".jsonl"
    paths = []
    for split in SPLITS:
        path = out_dir / f"{split}{suffix}"
        write_jsonl(path, (r.model_dump(exclude_none=True) for r in records if r.split == split))
        paths.append(path)
    write_jsonl(out_dir / "build_report.jsonl", [report.as_dict()])
    return paths
