"""Read the CLAUDETTE Terms-of-Service corpus (LexGLUE's UNFAIR-ToS source) in its layout.

Layout (as distributed, and as in `data/corpora/unfair-tos`):
  DIR/Sentences/<Company>.txt         one sentence a line, lower-cased and tokenised
  DIR/Labels_<CAT>/<Company>.txt      1 / -1 per sentence for each unfair-term category
  DIR/OriginalTaggedDocuments/<Company>.xml
                                      the original text with inline tags <cat{level}>
                                      (level 1 clearly fair, 2 potentially unfair,
                                      3 clearly unfair)

The per-category label files are LexGLUE's labels and are authoritative for "unfair";
the tagged document gives each sentence its original casing and the experts' fairness
level. Sentences are aligned to the tagged text by their letters and digits alone
(tokenisation and case differ); a sentence that cannot be aligned keeps its tokenised
text and a default level, and is counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cuad import CorpusError, read_text

CATEGORIES = ("A", "CH", "CR", "J", "LAW", "LTD", "TER", "USE")
_TAG = re.compile(r"<(/?)([a-z]+)(\d)>")
_TAG_TO_CAT = {c.lower(): c for c in CATEGORIES}
# LexGLUE's split (Chalkidis et al., 2022); companies in neither list are `test`.
LEXGLUE_TRAIN = frozenset(
    "Tinder Betterpoints_UK Deliveroo 9gag Booking YouTube Yahoo TrueCaller Skype WorldOfWarcraft "
    "Viber Microsoft Instagram Rovio Onavo Moves-app Syncme Google Facebook Vivino Atlas Dropbox "
    "musically Spotify Endomondo WhatsApp Zynga PokemonGo Masquerade Skyscanner".split()
)
LEXGLUE_VALIDATION = frozenset(
    "Nintendo Airbnb Crowdtangle TripAdvisor Supercell Headspace Fitbit Vimeo Oculus LindenLab".split()
)
_DETOK = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}", "``": '"', "''": '"'}


def lexglue_split(company: str) -> str:
    if company in LEXGLUE_TRAIN:
        return "train"
    if company in LEXGLUE_VALIDATION:
        return "validation"
    return "test"


@dataclass
class ToSSentence:
    index: int  # line number in Sentences/<Company>.txt, from 0
    start: int  # offsets into the de-tagged document text (or the sentence file if unaligned)
    end: int
    text: str
    labels: frozenset[str]  # LexGLUE unfair categories (label 1)
    levels: dict[str, int]  # category -> expert fairness level (1-3) from the tags
    aligned: bool


@dataclass
class ToSDocument:
    company: str
    split: str
    text: str  # the original document with its tags removed
    sentences: list[ToSSentence]


def strip_tags(xml: str) -> tuple[str, list[tuple[int, int, str, int]]]:
    """Remove the inline category tags, returning the text and (start, end, CAT, level)."""
    out: list[str] = []
    pos = 0
    length = 0
    open_tags: dict[str, list[tuple[int, int]]] = {}
    spans: list[tuple[int, int, str, int]] = []
    for m in _TAG.finditer(xml):
        out.append(xml[pos : m.start()])
        length += m.start() - pos
        pos = m.end()
        closing, name, level = m.group(1) == "/", m.group(2), int(m.group(3))
        if name not in _TAG_TO_CAT:
            continue
        if not closing:
            open_tags.setdefault(name, []).append((length, level))
        elif open_tags.get(name):
            start, lvl = open_tags[name].pop()
            spans.append((start, length, _TAG_TO_CAT[name], lvl))
    out.append(xml[pos:])
    return "".join(out), spans


def detokenize(sentence: str) -> str:
    words = [_DETOK.get(w, w) for w in sentence.split()]
    text = " ".join(words)
    text = re.sub(r"\s+([.,;:!?%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{$])\s+", r"\1", text)
    return re.sub(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)


def _skeleton(text: str) -> tuple[str, list[int]]:
    keep = [(i, c.lower()) for i, c in enumerate(text) if c.isalnum()]
    return "".join(c for _, c in keep), [i for i, _ in keep]


def _read_lines(path: Path) -> list[str]:
    return read_text(path).rstrip("\n").split("\n") if path.exists() else []


def read_company(root: Path, company: str) -> ToSDocument:
    sentences = _read_lines(root / "Sentences" / f"{company}.txt")
    if not any(s.strip() for s in sentences):
        raise CorpusError(f"{root / 'Sentences' / (company + '.txt')}: no sentences")
    labels: dict[str, list[str]] = {}
    for cat in CATEGORIES:
        path = root / f"Labels_{cat}" / f"{company}.txt"
        lines = _read_lines(path)
        if lines and len(lines) != len(sentences):
            raise CorpusError(f"{path}: {len(lines)} labels for {len(sentences)} sentences; the files must align line by line")
        for i, v in enumerate(lines, 1):
            if v.strip() not in ("1", "-1"):
                raise CorpusError(f"{path}:{i}: label {v.strip()!r} is not 1 or -1")
        labels[cat] = lines
    xml_path = root / "OriginalTaggedDocuments" / f"{company}.xml"
    text, tags = strip_tags(read_text(xml_path)) if xml_path.exists() else ("", [])
    skel, back = _skeleton(text)

    out: list[ToSSentence] = []
    cursor = 0
    for i, raw in enumerate(sentences):
        if not raw.strip():
            continue
        cats = frozenset(c for c in CATEGORIES if labels[c] and labels[c][i].strip() == "1")
        plain = detokenize(raw)
        key, _ = _skeleton(plain)
        j = skel.find(key, cursor) if key else -1
        if j < 0 and key:
            j = skel.find(key)
        if j >= 0 and key:
            start, end = back[j], back[j + len(key) - 1] + 1
            cursor = j + len(key)
            sent_text, aligned = text[start:end], True
        else:
            start, end, sent_text, aligned = 0, len(plain), plain, False
        levels: dict[str, int] = {}
        if aligned:
            for ts, te, cat, lvl in tags:
                overlap = min(te, end) - max(ts, start)
                if overlap > 0.5 * (end - start):
                    # level 4 appears in one company's tags: not part of the scheme, read as 2
                    levels[cat] = max(levels.get(cat, 0), lvl if lvl in (1, 2, 3) else 2)
        out.append(ToSSentence(i, start, end, sent_text, cats, levels, aligned))
    return ToSDocument(company, lexglue_split(company), text, out)


def companies(root: str | Path) -> list[str]:
    root = Path(root)
    sent_dir = root / "Sentences"
    if not sent_dir.is_dir():
        raise CorpusError(f"{root}: no Sentences/ folder; --claudette must name a CLAUDETTE (unfair-tos) folder")
    names = sorted(p.stem for p in sent_dir.glob("*.txt"))
    if not names:
        raise CorpusError(f"{sent_dir}: no <Company>.txt files")
    return names


def iter_documents(root: str | Path) -> Iterator[ToSDocument]:
    root = Path(root)
    for company in companies(root):
        yield read_company(root, company)
