"""How well segmentation keeps lawyer-marked clauses whole, measured on CUAD.

    contract-review data segments                      # validation contracts, appends to the results file
    contract-review data segments --split train --no-write

CUAD's lawyers marked the text of each clause of interest (`master_clauses.csv`). A span
is *whole* when one segment contains all of it: the model then sees the clause as one
unit; a span cut across segments is seen in pieces, and a span glued into a long segment
is diluted. The report gives, per segmenter:

- `spans_whole`: the share of located spans that lie inside one segment (furniture such
  as a page footer inside the segment is allowed: it is cut out of what the model sees);
  `spans_whole_clause`: the same, counting only segments the app labels (kind `clause`);
  `spans_whole_or_one_section`: whole, or cut only into one numbered section and its list
  items ("6.02" and "6.02(a)", "6.02(b)"), which carry the section's lead-in as context;
- `span_share_of_segment`: for whole spans, the median share of the segment's characters
  the span covers (high: the segment is about the span; low: the span is a needle in it);
- segment counts per kind and the length distribution of clause segments (characters).

Two baselines expose what the share alone would hide: `document` (each contract one
segment: every span is whole, and useless) and `paragraphs` (split at blank lines only);
`--at REV` measures the segmenter of an earlier commit instead of the current one, for a
before/after comparison on the same measure.
Splits are the dataset's (`build._cuad_splits`); measure on validation or train, never
tune on test. Results are appended to `data/dataset/segmentation.json`, one row per
(segmenter, split, commit), so the history stays data.
"""

from __future__ import annotations

import bisect
import json
import re
import statistics
import subprocess
import sys
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from contract_review.paths import DATASET_DIR, REPO_ROOT

from . import cuad
from .build import _cuad_splits
from .segment import segment, trim

RESULTS_FILE = DATASET_DIR / "segmentation.json"


Segmenter = Callable[[str], list[tuple[int, int, str, str | None]]]  # text -> (start, end, kind, number)


def paragraphs(text: str) -> list[tuple[int, int, str, None]]:
    """Baseline: split at blank lines only."""
    return [(m.start(), m.end(), "clause", None) for m in re.finditer(r"\S(?:[^\n]|\n(?![ \t]*\n))*", text)]


def whole_document(text: str) -> list[tuple[int, int, str, None]]:
    """Baseline: the whole contract as one segment."""
    return [(0, len(text), "clause", None)]


def _rows(segment_fn) -> Segmenter:
    def run(text: str) -> list[tuple[int, int, str, str | None]]:
        return [(s.start, s.end, getattr(s, "kind", "clause"), getattr(s, "number", None)) for s in segment_fn(text)
                if getattr(s, "kind", "clause") != "furniture"]
    return run


current = _rows(segment)


def segmenter_at(rev: str) -> Segmenter:
    """The segmenter of an earlier commit, read from git, for a before/after comparison. It
    must need only the standard library, as `annotation/segment.py` did up to c6ba518."""
    try:
        source = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{rev}:annotation/segment.py"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ValueError(f"cannot read annotation/segment.py at {rev!r} from git ({exc}); give a commit of "
                         "this repository") from None
    name = "_segment_at_" + re.sub(r"\W", "_", rev)
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        exec(compile(source, f"{rev}:annotation/segment.py", "exec"), module.__dict__)
    except ImportError as exc:
        raise ValueError(f"the segmenter at {rev} imports other modules ({exc}); check that commit out and run "
                         "`contract-review data segments` there") from None
    return _rows(module.segment)


SEGMENTERS: dict[str, Segmenter] = {
    "segment": current, "paragraphs": paragraphs, "document": whole_document,
}


def _quantiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}
    v = sorted(values)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
    return {"p10": q(0.1), "p25": q(0.25), "median": q(0.5), "p75": q(0.75), "p90": q(0.9), "max": v[-1]}


def _one_section(touched: list[tuple[int, int, str, str | None]]) -> bool:
    """Whether the segments a span touches are one numbered section and its items ("6.02"
    with "6.02(a)", "6.02(b)"): a long list split into items that each carry the lead-in."""
    first = touched[0][3]
    return bool(first) and all(t[3] and t[3].startswith(first) for t in touched)


def measure(contracts: Sequence[cuad.CuadContract], segmenter: Segmenter) -> dict:
    """The report's numbers for one segmenter over some contracts (see the module docstring)."""
    spans = whole = whole_clause = whole_section = 0
    share: list[float] = []
    per_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kinds: Counter = Counter()
    lengths: list[int] = []
    for c in contracts:
        segs = sorted(segmenter(c.text))
        starts = [s for s, _, _, _ in segs]
        for s, e, kind, _ in segs:
            kinds[kind] += 1
            if kind == "clause":
                lengths.append(e - s)
        for s, e, cat in c.spans:
            s, e = trim(c.text, s, e)
            if e <= s:
                continue
            spans += 1
            per_cat[cat][1] += 1
            i = bisect.bisect_right(starts, s) - 1
            hit = next((seg for seg in segs[max(0, i - 3): i + 1] if seg[0] <= s and e <= seg[1]), None)
            if hit is None:
                touched = [seg for seg in segs[max(0, i - 3): bisect.bisect_left(starts, e)] if seg[1] > s]
                whole_section += bool(touched) and _one_section(touched)
                continue
            whole_section += 1
            whole += 1
            per_cat[cat][0] += 1
            whole_clause += hit[2] == "clause"
            share.append((e - s) / (hit[1] - hit[0]))
    return {
        "contracts": len(contracts),
        "spans": spans,
        "spans_whole": round(whole / spans, 4) if spans else None,
        "spans_whole_clause": round(whole_clause / spans, 4) if spans else None,
        "spans_whole_or_one_section": round(whole_section / spans, 4) if spans else None,
        "span_share_of_segment": round(statistics.median(share), 4) if share else None,
        "segments": sum(kinds.values()),
        "segments_by_kind": dict(sorted(kinds.items())),
        "clause_chars": _quantiles(lengths),
        "clauses_over_1200_chars": sum(n > 1200 for n in lengths),
        "spans_whole_by_category": {cat: round(w / n, 3) for cat, (w, n) in sorted(per_cat.items())},
    }


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "annotation"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(cuad_dir: Path, split: str = "validation", segmenters: Sequence[str] = tuple(SEGMENTERS),
           at: str | None = None) -> list[dict]:
    """Rows for the current segmenter (or the one at commit `at`) and the baselines."""
    if split == "test":
        raise ValueError("segmentation is measured on validation or train contracts; test contracts stay unseen")
    contracts = list(cuad.iter_contracts(cuad_dir))
    splits = _cuad_splits(contracts)
    chosen = [c for c in contracts if splits[c.doc_id] == split]
    chosen_fns = dict(SEGMENTERS, segment=segmenter_at(at)) if at else SEGMENTERS
    commit = at or _commit()
    return [{"segmenter": name, "split": split, "commit": commit if name == "segment" else None,
             **measure(chosen, chosen_fns[name])} for name in segmenters]


def append_results(rows: list[dict], path: Path = RESULTS_FILE) -> None:
    """Keep one row per (segmenter, split, commit): a rerun at one commit replaces its row."""
    old = json.loads(path.read_text()) if path.exists() else []
    key = lambda r: (r["segmenter"], r["split"], r.get("commit"))  # noqa: E731
    new_keys = {key(r) for r in rows}
    path.write_text(json.dumps([r for r in old if key(r) not in new_keys] + rows, indent=1) + "\n")
