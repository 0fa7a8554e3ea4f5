"""Build the clause dataset from the CUAD and CLAUDETTE corpora.

    records = build_records(cuad_dir, claudette_dir)     # labelled clauses with splits
    write_dataset(records, out_dir)                       # train/validation/test JSONL

CUAD: every contract is segmented (`segment.segment`) and each clause segment is a record
(headings, addresses, signature blocks, bank details and tables of contents are not
clauses, so not records); its `text` is the clause without page furniture, and the model
input gives a fragment (a list item, a paragraph under a heading) the heading and lead-in
it needs (`Segment.model_text`). A clause takes a CUAD category when a lawyer's span covers
at least half of the shorter of the two (so a span inside a long clause, or a clause inside
a long span, both count); clauses no span touches are `other`, unless the checklist rule
labeller (`type_rules.py`) finds a type CUAD does not mark (indemnification, force
majeure, ...). CLAUDETTE: one record per sentence, LexGLUE's labels (and the same rule
labeller on sentences LexGLUE marks no category for).

Each contract gets one canonical party list (`parties.contract_parties`: the opening, CUAD's
Parties column, the signature blocks), written to `parties.jsonl`; every record's
`party_names` / `party_aliases` come from it, and so do the obligated party
(`obligation.py`) and the risk's bearer and severity (`risk.py`, the written criteria of
data/guidelines.md; CLAUDETTE's expert fairness level sets the severity of its categories).

Splits are by document: CUAD contracts (near-duplicate contracts grouped first) are
hashed into train/validation/test 80/10/10; CLAUDETTE follows LexGLUE's company split.
A clause that duplicates (exactly or nearly) a clause of a later split is dropped from
the earlier one (train < validation < test), so evaluation sets stay whole and nothing
leaks. Verified obligated-party labels (`data/party_verified.jsonl`) override the rule
pre-labeller; a label checked against other party names than the contract's canonical list
is re-mapped through the names (first and second swapped) or, when the names cannot be
matched, left out and listed in the build report. The output is a pure function of the
inputs: two runs give identical bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from contract_review.prompt import INSTRUCTION, SYSTEM, Answer, build_input
from contract_review.records import SPLITS, ClauseRecord, RecordError, iter_jsonl, write_jsonl
from contract_review.taxonomy import Taxonomy, load_taxonomy

from . import claudette, cuad
from .dedup import MinHasher, jaccard, near_duplicate_pairs, shingles
from .graded_labels import apply_graded
from .obligation import label_obligation
from .parties import PartyList, contract_parties, same_party, terms_of_service_list
from .risk import label_risk
from .segment import normalize, segment
from .type_rules import rule_types

SPLIT_SHARES = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
PARTIES_FILE = "parties.jsonl"


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
    verified_remapped: int = 0  # checked against the other role order: first and second swapped back
    verified_unmatched: list = field(default_factory=list)  # ids whose checker's names match no listed party
    graded_applied: int = 0
    graded_stale: int = 0
    type_rules: Counter = field(default_factory=Counter)  # "split/type" -> clauses the rule labeller typed
    party_lists: Counter = field(default_factory=Counter)  # what the documents' party lists look like
    # "source/doc_id" -> the document's canonical party list (written to parties.jsonl, not to the report)
    party_list_rows: dict = field(default_factory=dict)
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
            "verified_remapped": self.verified_remapped,
            "verified_unmatched": sorted(self.verified_unmatched),
            "graded_applied": self.graded_applied,
            "graded_stale": self.graded_stale,
            "type_rules": dict(sorted(self.type_rules.items())),
            "party_lists": dict(sorted(self.party_lists.items())),
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


def _record(tax: Taxonomy, *, source: str, doc_id: str, split: str, start: int, end: int, text: str, types,
            type_labeller: str, plist: PartyList, level: int | None = None, model_text: str | None = None) -> dict:
    """One labelled record: types as given, the obligated party and the risk by the rule pre-labellers."""
    types = tax.order_types(types)
    roles = plist.roles()
    tos = plist.kind == "terms_of_service"
    risk = label_risk(text, types, roles, terms_of_service=tos, fairness=level, tax=tax)
    category = tax.clause_type(risk.type_id).risk_category if risk.severity != "none" else "none"
    party = label_obligation(text, roles).party
    names = plist.names()
    clean = normalize(text)
    answer = Answer(tuple(types), party, risk.severity, category, risk.reason, risk_to=risk.risk_to,
                    severity=risk.severity)
    rec = {
        "id": f"{source}/{doc_id}/{start}-{end}",
        "system": SYSTEM,
        "instruction": INSTRUCTION,
        "input": build_input(model_text or clean, names),
        "output": answer.to_json(),
        "source": source,
        "doc_id": doc_id,
        "split": split,
        "start": start,
        "end": end,
        "text": clean,
        "clause_types": types,
        "party": party,
        "party_names": names,
        "party_aliases": {role: a for role, a in plist.aliases().items() if a},
        "risk_to": risk.risk_to,
        "severity": risk.severity,
        "risk": risk.severity,
        "risk_category": category,
        "reason": risk.reason,
        "type_labeller": type_labeller,
        "party_labeller": "rules",
        "risk_labeller": "claudette+rules" if level is not None and risk.criterion.startswith("claudette") else "rules",
        "verified": False,
    }
    if level is not None:
        rec["fairness"] = level
    return rec


def _checklist_types(text: str) -> set[str]:
    """Types the rule labeller finds in a clause the corpus left `other`."""
    return {m.type_id for m in rule_types(text)}


def _count_party_list(plist: PartyList, report: BuildReport) -> None:
    named = sum(p.named for p in plist.parties)
    report.party_lists[f"named_{min(named, 3)}{'+' if named > 3 else ''}"] += 1
    report.party_lists["with_blank"] += any(p.blank for p in plist.parties)
    report.party_lists["with_unnamed"] += any(not p.name for p in plist.parties)
    report.party_lists["more_than_two"] += len(plist.parties) > 2


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
                 party_lists: dict[str, dict] | None = None) -> list[dict]:
    by_cuad = tax.by_cuad()
    contracts = list(tqdm(cuad.iter_contracts(cuad_dir), desc="CUAD contracts", disable=not progress, total=None))
    splits = _cuad_splits(contracts)
    out = []
    for c in tqdm(contracts, desc="CUAD clauses", disable=not progress):
        split = splits[c.doc_id]
        report.documents[f"cuad/{split}"] += 1
        report.cuad_spans_missed += c.missed_spans
        report.cuad_spans_located += len(c.spans)
        plist = contract_parties(c.text, hints=c.parties)
        _count_party_list(plist, report)
        if party_lists is not None:
            party_lists[f"cuad/{c.doc_id}"] = {"source": "cuad", "doc_id": c.doc_id, "split": split, **plist.as_dict()}
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
            labeller = "cuad"
            if not types:  # CUAD's lawyers marked nothing here: the checklist rules may
                types = _checklist_types(seg.clean)
                labeller = "rules" if types else "cuad"
            out.append(_record(tax, source="cuad", doc_id=c.doc_id, split=split, start=seg.start, end=seg.end,
                               text=seg.clean, types=types, type_labeller=labeller, plist=plist,
                               model_text=seg.model_text))
    return out


def claudette_records(root: Path, tax: Taxonomy, report: BuildReport, progress: bool = True,
                      party_lists: dict[str, dict] | None = None) -> list[dict]:
    by_code = tax.by_claudette()
    out = []
    for doc in tqdm(claudette.iter_documents(root), desc="CLAUDETTE companies", disable=not progress):
        report.documents[f"claudette/{doc.split}"] += 1
        plist = terms_of_service_list(doc.company)
        if party_lists is not None:
            party_lists[f"claudette/{doc.company}"] = {"source": "claudette", "doc_id": doc.company,
                                                      "split": doc.split, **plist.as_dict()}
        for s in doc.sentences:
            report.claudette_unaligned += not s.aligned
            unfair = {code: s.levels.get(code, 2) for code in s.labels}  # LexGLUE's 1 = level 2 or 3
            unfair = {code: max(lvl, 2) for code, lvl in unfair.items()}
            fair = {code for code, lvl in s.levels.items() if lvl == 1 and code not in unfair}
            types = {by_code[c].id for c in unfair} | {by_code[c].id for c in fair}
            level = max(unfair.values()) if unfair else (1 if fair else None)
            labeller = "claudette"
            if not types:
                types = _checklist_types(s.text)
                labeller = "rules" if types else "claudette"
            out.append(_record(tax, source="claudette", doc_id=doc.company, split=doc.split, start=s.start,
                               end=s.end, text=s.text, types=types, type_labeller=labeller, plist=plist, level=level))
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


def _role_map(checked: dict[str, str], names: dict[str, str], aliases: dict[str, list[str]]) -> dict[str, str] | None:
    """How the roles a checker saw map onto the record's canonical roles: identity, swapped, or None when the
    checker's names cannot be matched to the list (then the label cannot be carried over safely)."""
    if all(checked.get(r) == names.get(r) for r in ("first_party", "second_party")):
        return {"first_party": "first_party", "second_party": "second_party"}

    def role_of(name: str) -> str | None:
        hits = {role for role in ("first_party", "second_party")
                for term in [names.get(role, ""), *aliases.get(role, [])]
                if term and name and (term.lower() == name.lower() or same_party(term, name))}
        return hits.pop() if len(hits) == 1 else None

    mapped = {r: role_of(checked.get(r, "")) for r in ("first_party", "second_party")}
    if None in mapped.values() or len(set(mapped.values())) != 2:
        return None
    return mapped


def apply_verified(records: list[dict], verified_file: Path | None, report: BuildReport) -> None:
    """Overlay checked obligated-party labels; a label whose clause text changed is stale, one checked
    against party names that do not match the contract's list is re-mapped or left out (listed)."""
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
        party = v["party"]
        if "party_names" in v:
            mapping = _role_map(v["party_names"], rec["party_names"], rec.get("party_aliases", {}))
            if mapping is None:
                report.verified_unmatched.append(v["id"])
                continue
            if mapping["first_party"] != "first_party":
                report.verified_remapped += 1
            party = mapping.get(party, party)
        report.prelabel_vs_verified[(rec["party"], party)] += 1
        rec["party"] = party
        rec["verified"] = True
        rec["labeller"] = v["labeller"]
        rec["party_labeller"] = v["labeller"]  # the label is the checker's, not the rules'
        ans = json.loads(rec["output"])
        ans["party"] = party
        rec["output"] = json.dumps(ans, ensure_ascii=False)
        report.verified_applied += 1


def build_records(
    cuad_dir: Path | None,
    claudette_dir: Path | None,
    verified_file: Path | None = None,
    progress: bool = True,
    graded_file: Path | None = None,
) -> tuple[list[ClauseRecord], BuildReport]:
    if cuad_dir is None and claudette_dir is None:
        raise ValueError("nothing to build: give --cuad DIR, --claudette DIR or both")
    tax = load_taxonomy()
    report = BuildReport()
    raw: list[dict] = []
    if cuad_dir is not None:
        raw += cuad_records(Path(cuad_dir), tax, report, progress, report.party_list_rows)
    if claudette_dir is not None:
        raw += claudette_records(Path(claudette_dir), tax, report, progress, report.party_list_rows)
    raw = drop_cross_split_duplicates(raw, report)
    apply_verified(raw, verified_file, report)
    report.graded_applied, report.graded_stale = apply_graded(raw, graded_file)
    raw.sort(key=lambda r: (r["source"], r["doc_id"], r["start"], r["end"]))
    records = [ClauseRecord.model_validate(r) for r in tqdm(raw, desc="validating", disable=not progress)]
    report.type_rules.clear()  # counted again on the records kept (a duplicate dropped above is not one)
    for r in records:
        report.records[f"{r.source}/{r.split}"] += 1
        if r.type_labeller == "rules":
            for t in r.clause_types:
                report.type_rules[f"{r.split}/{t}"] += 1
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
    rows = report.party_list_rows
    if rows:
        write_jsonl(out_dir / PARTIES_FILE, [rows[k] for k in sorted(rows)])
        paths.append(out_dir / PARTIES_FILE)
    return paths
