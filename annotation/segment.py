"""Clause segmentation of whole contracts, with character offsets into the original text.

Contracts arrive as EDGAR text dumps, PDF text layers or DOCX paragraphs: one line per
paragraph, hard-wrapped lines, whole agreements on a single line with inline numbering,
sub-clauses run together on one line ("(a) ...   (b) ..."), page numbers, "Source:"
banners and table-of-contents lines. `segment` turns any of these into clauses:

1. split at blank lines, and at line breaks that start a numbered item or end a sentence;
2. split inline at numbered sections ("... as follows: 1. All terms ...") and, in long
   passages, at inline sub-clause markers ("(a)", "(iv)");
3. drop layout artefacts (page numbers, banners, rulers);
4. attach headings ("ARTICLE 5 TERMINATION") to the clause they head;
5. split what is still too long at sentence ends.

Every `Segment` satisfies `text == original[start:end]`, so a clause can always be shown
in context and mapped back to labelled spans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CHARS = 1200  # longer passages are split at sentence ends (a clause, not a page)
SOFT_MAX_CHARS = 600  # past this, inline (a)/(b) sub-clauses become clauses of their own
MIN_CHARS = 20  # shorter fragments are headings, numbers or debris

_MARKER = r"(?:ARTICLE|Article|SECTION|Section)\s+[IVXLC\d]+|\d{1,2}(?:\.\d{1,2}){0,3}\.?(?=\s+[A-Z\"(])|\((?:[a-z]{1,2}|[ivxl]{1,5}|\d{1,2}|[A-Z])\)"
_LINE_MARKER = re.compile(rf"^[ \t]*(?:{_MARKER})")
# a numbered section starting inline right after the end of a sentence
_INLINE_SECTION = re.compile(r"(?<=[.;:])\s+(?=(?:ARTICLE|Section|SECTION)\s+[IVX\d]+|\d{1,2}(?:\.\d{1,2}){0,3}\.?\s+[A-Z\"])")
# an inline sub-clause marker: after a sentence end or a run of layout spaces
_INLINE_SUB = re.compile(r"(?:(?<=[.;:])\s+|\s{3,})(?=\((?:[a-z]{1,2}|[ivxl]{1,5}|\d{1,2})\)\s)")
_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z(\"])")
_ARTEFACT = re.compile(
    r"""^\s*(?:
        -?\s*\d{1,3}\s*-?                       # page number, "-2-"
      | (?:page|pg\.?)\s*\d+(?:\s*of\s*\d+)?     # "Page 2 of 9"
      | source:.*                                # EDGAR banner
      | table\s+of\s+contents
      | [\W_]+                                   # rulers, asterisks, "[***]" alone
      | \[\*+\]
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    text: str


def normalize(text: str) -> str:
    """Collapse layout whitespace; what the model and the reader see."""
    return " ".join(text.split())


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_at(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    cuts = [m.end() for m in pattern.finditer(text, start, end)]
    bounds = [start, *[c for c in cuts if start < c < end], end]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _lines_to_blocks(text: str) -> list[tuple[int, int]]:
    """Split at blank lines, and at single line breaks that begin a new item."""
    blocks: list[tuple[int, int]] = []
    for para in re.finditer(r"(?:[^\n]|\n(?![ \t]*\n))+", text):
        lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", para.group())]
        if not lines:
            continue
        width = max(e - s for s, e in lines)
        base = para.start()
        cur = base + lines[0][0]
        for (ps, pe), (ls, _) in zip(lines, lines[1:]):
            prev = para.group()[ps:pe].rstrip()
            starts_item = bool(_LINE_MARKER.match(para.group()[ls:]))
            # a line that ends a sentence well short of the paragraph's width was not wrapped
            ended = prev.endswith((".", ":", ";")) and len(prev) < 0.8 * width
            heading = len(prev.strip()) < 80 and not prev.endswith((",", "and", "or"))
            if starts_item or ended or (heading and prev.strip().isupper()):
                blocks.append((cur, base + ps + len(prev)))
                cur = base + ls
        blocks.append((cur, base + lines[-1][1]))
    return blocks


def _is_heading(s: str) -> bool:
    s = s.strip()
    if len(s) > 100 or not re.search(r"[A-Za-z]", s):
        return False
    if s.endswith((".", ";", ":")) and not re.fullmatch(rf"(?:{_MARKER})\s*[^.]{{0,60}}\.", s):
        return s.isupper() and len(s) < 60
    return True


def _pack(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Split a long passage at sentence ends into pieces of at most `max_chars`."""
    if end - start <= max_chars:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    cur = start
    last_cut = None
    for a, b in _split_at(text, start, end, _SENTENCE_END):
        if b - cur > max_chars and last_cut is not None and last_cut > cur:
            out.append((cur, last_cut))
            cur = last_cut
        last_cut = b
    out.append((cur, end))
    final: list[tuple[int, int]] = []
    for a, b in out:  # one sentence longer than the limit: cut at whitespace
        while b - a > 2 * max_chars:
            cut = text.rfind(" ", a, a + max_chars)
            cut = cut if cut > a else a + max_chars
            final.append((a, cut))
            a = cut
        final.append((a, b))
    return final


def segment(
    text: str,
    max_chars: int = MAX_CHARS,
    soft_max_chars: int = SOFT_MAX_CHARS,
    min_chars: int = MIN_CHARS,
) -> list[Segment]:
    pieces: list[tuple[int, int]] = []
    for bs, be in _lines_to_blocks(text):
        for s, e in _split_at(text, bs, be, _INLINE_SECTION):
            if e - s > soft_max_chars:
                pieces.extend(_split_at(text, s, e, _INLINE_SUB))
            else:
                pieces.append((s, e))

    segments: list[tuple[int, int]] = []
    pending: int | None = None  # start of heading(s) waiting for their clause
    for s, e in pieces:
        s, e = _trim(text, s, e)
        if e <= s or _ARTEFACT.match(text[s:e]):
            continue
        if _is_heading(text[s:e]) and e - s < 100:
            pending = s if pending is None else pending
            continue
        start = pending if pending is not None else s
        pending = None
        segments.extend(_pack(text, start, e, max_chars))
    if pending is not None:
        segments.append(_trim(text, pending, len(text)))

    out = []
    for s, e in segments:
        s, e = _trim(text, s, e)
        if e - s >= min_chars and sum(c.isalpha() for c in text[s:e]) >= 10:
            out.append(Segment(s, e, text[s:e]))
    return out
