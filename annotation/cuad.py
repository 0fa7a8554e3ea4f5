"""Read CUAD v1 (full contract texts + lawyers' clause spans) in its published layout.

Layout (as distributed, and as in `data/corpora/cuad`):
  DIR/master_clauses.csv        one row per contract; per category a column of spans
                                (a Python-list string) and an "-Answer" column
  DIR/full_contract_txt/*.txt   the contract texts; stems match `Filename` (most exactly,
                                a few only after normalising case and punctuation)

Spans are found in the text exactly where possible, else by a whitespace-tolerant search
(EDGAR text and the CSV differ in runs of spaces); a span found nowhere is counted and
reported, never silently dropped.
"""

from __future__ import annotations

import ast
import csv
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class CorpusError(ValueError):
    """A corpus file is missing, unreadable or malformed."""


@dataclass
class CuadContract:
    doc_id: str  # the text file's stem
    path: Path
    text: str
    spans: list[tuple[int, int, str]]  # (start, end, CUAD category) located in `text`
    parties: list[str]  # CUAD's "Parties" spans: names and alias definitions
    missed_spans: int = 0
    answers: dict[str, str] = field(default_factory=dict)


def _key(name: str) -> str:
    # file systems and the CSV disagree on accents (NFC vs NFD): compare ASCII skeletons
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = re.sub(r"\.(pdf|txt)$", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _categories(header: list[str]) -> list[str]:
    return [h for h in header if h not in ("Filename",) and not h.endswith("-Answer") and f"{h}-Answer" in header]


def _parse_spans(cell: str, where: str) -> list[str]:
    cell = (cell or "").strip()
    if not cell:
        return []
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        raise CorpusError(f"{where}: not a Python list of spans: {cell[:60]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorpusError(f"{where}: expected a list of strings")
    return [v for v in value if v.strip()]


def locate(text: str, span: str, hint: int = 0) -> tuple[int, int] | None:
    """Find `span` in `text`, tolerating differences in whitespace."""
    i = text.find(span, hint)
    if i < 0:
        i = text.find(span)
    if i >= 0:
        return i, i + len(span)
    words = span.split()
    if not words:
        return None
    m = re.search(r"\s+".join(re.escape(w) for w in words), text)
    if m is None:  # last resort: the same words, whatever punctuation or entities sit between
        tokens = re.findall(r"[A-Za-z0-9]+", span)
        if len(tokens) >= 4:
            m = re.search(r"[\W_]+".join(tokens), text)
    return (m.start(), m.end()) if m else None


def read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def iter_contracts(cuad_dir: str | Path, warn=lambda msg: print(msg, file=sys.stderr)) -> Iterator[CuadContract]:
    cuad_dir = Path(cuad_dir)
    csv_path = cuad_dir / "master_clauses.csv"
    txt_dir = cuad_dir / "full_contract_txt"
    if not csv_path.is_file():
        raise CorpusError(f"{cuad_dir}: no master_clauses.csv; --cuad must name a CUAD v1 folder")
    if not txt_dir.is_dir():
        raise CorpusError(f"{cuad_dir}: no full_contract_txt/ folder; --cuad must name a CUAD v1 folder")
    texts = {_key(p.name): p for p in sorted(txt_dir.glob("*.txt"))}
    csv.field_size_limit(sys.maxsize)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            rows = list(enumerate(reader, 2))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{csv_path}: unreadable CSV ({exc})") from None
    if "Filename" not in header:
        raise CorpusError(f"{csv_path}:1: no 'Filename' column; is this CUAD's master_clauses.csv?")
    cats = _categories(header)
    col = {h: i for i, h in enumerate(header)}
    used: set[str] = set()
    for lineno, row in rows:
        if len(row) != len(header):
            raise CorpusError(f"{csv_path}:{lineno}: {len(row)} fields, expected {len(header)}")
        name = row[col["Filename"]]
        path = texts.get(_key(name))
        if path is None:  # looser: a text whose key starts with the PDF's key or vice versa
            k = _key(name)
            cands = [p for kk, p in texts.items() if kk.startswith(k[:40]) and kk not in used]
            path = cands[0] if len(cands) == 1 else None
        if path is None:
            warn(f"{csv_path}:{lineno}: no text file for {name!r} in {txt_dir}; contract skipped")
            continue
        used.add(_key(path.name))
        text = read_text(path)
        if not text.strip():
            warn(f"{path}: contract has no text; skipped")
            continue
        spans: list[tuple[int, int, str]] = []
        missed = 0
        for cat in cats:
            parts = [
                part
                for span in _parse_spans(row[col[cat]], f"{csv_path}:{lineno}:{cat}")
                for part in span.split("<omitted>")  # CUAD joins discontinuous pieces with it
                if part.strip()
            ]
            for span in parts:
                loc = locate(text, span.strip())
                if loc is None:
                    missed += 1
                else:
                    spans.append((loc[0], loc[1], cat))
        yield CuadContract(
            doc_id=path.stem,
            path=path,
            text=text,
            spans=sorted(spans),
            parties=_parse_spans(row[col["Parties"]], f"{csv_path}:{lineno}:Parties") if "Parties" in col else [],
            missed_spans=missed,
            answers={c: row[col[f"{c}-Answer"]] for c in cats},
        )
