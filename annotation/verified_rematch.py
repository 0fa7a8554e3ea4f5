"""Carry checked obligated-party labels over to a rebuilt dataset whose clause boundaries moved.

    contract-review data rematch-verified --old OLD_DATASET_DIR      # then: contract-review data build

A verified label (`data/party_verified.jsonl`) names its clause by id (source/doc/start-end)
and by the SHA-1 of its text. When segmentation changes, both move; the label still holds
where the clause's words are the same. For each label whose clause is not found as it was:

1. the old record (from the dataset the label was checked on) gives the clause's words;
2. the new clause records of the same document that overlap it are the candidates;
3. a candidate takes the label when it holds the same words (at least 90% of the old
   words, at most 10% words of its own: furniture or a heading moved), or when what
   changed holds no words of duty or right (shall, will, must, may, agrees, warrants ...):
   it holds at least half of the old words, the words it lost and the words it gained
   carry no such word -- a title split off the opening, a page footer cut out, a
   continuation joined across a page break. A label does not follow a clause into one
   where a duty was added or taken away, since who must act may then differ;
4. otherwise the label is reported as lost, with the reason: the clause was split into
   several clauses, merged into a longer one, or is no clause any more (a heading, an
   address, a signature block) -- the document is segmented again to say which.

The labels file is rewritten with the new ids and SHA-1s; a moved label keeps its old id as
`moved_from`, and lost labels stay in the file (stale, counted by the build) so the human
work is never thrown away.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from contract_review.records import SPLITS, find_split_file, iter_jsonl, read_records

SAME_KEPT, SAME_ADDED = 0.9, 0.1  # the same clause, up to a heading or furniture moved
MIN_KEPT = 0.5  # a clause keeps its label only if it holds at least half of the old words
# what decides who must act (data/guidelines.md): words of duty, permission and promise
_DUTY = re.compile(r"\b(?:shall|will|must|may|agrees?|undertakes?|covenants?|warrants?|represents?|obligated|"
                   r"responsible|required|entitled|indemnif\w*|pay)\b", re.I)

Segments = Callable[[str], list]  # doc_id -> that document's segments (annotation.segment.Segment)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def overlap_words(old: str, new: str) -> tuple[float, float, list[str], list[str]]:
    """Share of the old words kept in new, share of new words that are new (in word order),
    and the words dropped and added."""
    a, b = _words(old), _words(new)
    if not a or not b:
        return 0.0, 1.0, a, b
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    in_a = {i for m in blocks for i in range(m.a, m.a + m.size)}
    in_b = {j for m in blocks for j in range(m.b, m.b + m.size)}
    dropped = [w for i, w in enumerate(a) if i not in in_a]
    added = [w for j, w in enumerate(b) if j not in in_b]
    return len(in_a) / len(a), len(added) / len(b), dropped, added


def carries_over(old: str, new: str) -> float | None:
    """How well `new` holds `old` (higher is better), or None when the label cannot follow."""
    kept, added, dropped_words, added_words = overlap_words(old, new)
    if kept >= SAME_KEPT and added <= SAME_ADDED:
        return 1 + kept - added
    if kept >= MIN_KEPT and not _DUTY.search(" ".join(dropped_words)) and not _DUTY.search(" ".join(added_words)):
        return kept - added
    return None


def _why_lost(old: dict, cands: list[dict], segments: list) -> str:
    touched = [s for s in segments if s.start < old["end"] and s.end > old["start"]]
    clauses = [s for s in touched if s.kind == "clause"]
    if not clauses:
        kinds = sorted({s.kind for s in touched}) or ["nothing"]
        return f"no clause any more ({', '.join(kinds)})"
    if len(clauses) > 1:
        return "split into several clauses, duties in more than one"
    kept, added, _, _ = overlap_words(old["text"], clauses[0].clean)
    if kept >= MIN_KEPT and added > SAME_ADDED:
        return "merged into a longer clause with duties of its own"
    return f"words of duty changed (kept {kept:.0%} of the words)"


def rematch(verified: list[dict], old_records: dict[str, dict], new_records: list[dict],
            segments: Segments) -> tuple[list[dict], Counter, list[dict]]:
    """The labels with ids and SHA-1s of the new records; outcome counts; the lost labels with reasons."""
    new_by_id = {r["id"]: r for r in new_records}
    by_doc: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in new_records:
        by_doc[(r["source"], r["doc_id"])].append(r)
    out, counts, lost = [], Counter(), []
    for v in verified:
        rec = new_by_id.get(v["id"])
        if rec is not None and _sha1(rec["text"]) == v["text_sha1"]:
            counts["same id and text"] += 1
            out.append(v)
            continue
        old = old_records.get(v["id"])
        if old is None or _sha1(old["text"]) != v["text_sha1"]:
            counts["old clause not found"] += 1
            lost.append({**v, "reason": "the old dataset has no clause with this id and text"})
            out.append(v)
            continue
        same_doc = by_doc[(old["source"], old["doc_id"])]
        cands = [r for r in same_doc if r["start"] < old["end"] and r["end"] > old["start"]]
        best = None
        for r in cands:
            score = carries_over(old["text"], r["text"])
            if score is not None and (best is None or score > best[0]):
                best = (score, r)
        if best is None:
            reason = _why_lost(old, cands, segments(old["doc_id"]) if old["source"] == "cuad" else [])
            counts[f"lost: {reason.split(' (')[0]}"] += 1
            lost.append({**v, "reason": reason, "text": old["text"]})
            out.append(v)
            continue
        r = best[1]
        if _sha1(r["text"]) == v["text_sha1"]:
            counts["same text, new id"] += 1
        else:
            counts["same words" if best[0] >= 1 else "no duty added or taken away"] += 1
        moved = {**v, "id": r["id"], "text_sha1": _sha1(r["text"])}
        moved.setdefault("moved_from", v["id"])
        out.append(moved)
    return out, counts, lost


def load_dataset(folder: Path) -> list[dict]:
    return [r.model_dump(exclude_none=True) for split in SPLITS for r in read_records(find_split_file(folder, split))]


def rematch_files(verified_file: Path, old_dataset: Path, new_dataset: Path, cuad_dir: Path,
                  report_file: Path | None = None) -> Counter:
    from . import cuad
    from .segment import segment

    texts = {c.doc_id: c.text for c in cuad.iter_contracts(cuad_dir)}
    verified = [v for _, v in iter_jsonl(verified_file)]
    old = {r["id"]: r for r in load_dataset(old_dataset)}
    entries, counts, lost = rematch(verified, old, load_dataset(new_dataset), lambda d: segment(texts[d]))
    duplicates = [i for i, n in Counter(e["id"] for e in entries).items() if n > 1]
    if duplicates:
        raise ValueError(f"{len(duplicates)} clauses would get two labels (e.g. {duplicates[0]}); "
                         "check the old dataset given with --old")
    verified_file.write_text("".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries))
    if report_file is not None:
        report_file.write_text(json.dumps({"labels": len(entries), "outcomes": dict(sorted(counts.items())),
                                           "lost": lost}, indent=1, ensure_ascii=False) + "\n")
    return counts
