"""Segmentation of whole contracts into the units a lawyer reads, with offsets into the original.

    for seg in segment(text):
        seg.kind        # clause | heading | address | signature | payment_details | contents
        seg.number      # the contract's own number: "Section 1.04", "6.02(b)", None
        seg.heading     # its heading as written: "Termination", "PERFORMANCE", None
        seg.context     # heading and parent lead-in it needs ("6.02. Termination. ... terminated only:")
        seg.clean       # its words without page furniture: what a model reads
        seg.fragment    # True when it cannot be read alone: a list item, a paragraph under a heading
        seg.model_text  # what a model is given: for a fragment its context, a line break, then clean

Contracts arrive as EDGAR text dumps, PDF text layers or DOCX paragraphs: one line per
paragraph, hard-wrapped lines, whole agreements on one line with inline numbering, page
headers and footers glued to the text. In order:

1. page furniture (`furniture.find_furniture`) is blanked in a working copy, so offsets
   stay valid; a passage cut by a page break is joined again across it (the furniture
   stays inside the segment's span as a *gap*, outside its `clean` words);
2. lines become blocks: at blank lines, and at line breaks that start a numbered item or
   end a sentence; addresses, signature blocks, bank details and tables of contents are
   recognised as blocks (`block_kinds`), and split from a clause's lead-in glued to them;
3. blocks become items at numbering markers, those inside a line only when they continue
   the contract's numbering (`numbering.Outline`), so "Section 1 of Amendment" stays text;
4. a heading is joined to the paragraph it heads; a lead-in with a short list stays one
   unit, a long list becomes one clause per item, each carrying its heading and lead-in as
   `context`; a lead-in left alone is a `heading`, not a clause;
5. a clause still longer than `max_chars` is split at sentence ends.

Every `Segment` satisfies `text == original[start:end]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .block_kinds import CLAUSE, CONTENTS, block_kind, field_start, inline_contents, is_contents
from .furniture import find_furniture, mask
from .numbering import Marker, Outline, continues_sentence, heading_text, parse_marker, split_heading

MAX_CHARS = 1200  # longer clauses are split at sentence ends (a clause, not a page)
SOFT_MAX_CHARS = 600  # a lead-in and its list up to this length stay one clause
MIN_CHARS = 20  # shorter clause fragments are debris ("[***]", stray numbers)
CONTEXT_CHARS = 320  # the context a model input is given, at most
LEAD_IN_CHARS = 200  # a one-sentence lead-in ending in ":" up to this length, split from its list, is a heading

HEADING = "heading"
FURNITURE = "furniture"
KINDS = (CLAUSE, HEADING, "address", "signature", "payment_details", CONTENTS, FURNITURE)

_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z(\"“])")
_LEAD_IN_END = re.compile(r"(?::|—|–|\bas follows|\bfollowing|\bonly|\bthat|\bto)[\s\"”]*$", re.IGNORECASE)
# where a marker found inside a line may begin: after a sentence end, a run of layout spaces,
# or an upper-case heading ("1. TERMS OF AGREEMENT 1.1 Commencement")
_INLINE_AT = re.compile(
    r"(?P<sentence>(?<=[.;:])[\"”)\-]?[ \t]+)|[ \t]{3,}|(?P<conj>(?<=[;,])[ \t]+(?:and|or|and/or)[ \t]+(?=\())|"
    r"(?P<caps>(?<=[A-Z]{2})[ \t]+(?=\d))|"
    r"(?P<compound>(?<=[A-Za-z]{2})[ \t]+(?=\d{1,3}(?:\.\d{1,3})+[ \t]*\(\w{1,4}\)))"
)
_REFERENCE_END = re.compile(r"(?:section|article|clause|paragraph|schedule|exhibit|annex|appendix)s?"
                            r"[ \t]*(?:\d{1,3}(?:\.\d{1,3})*)?[ \t]*$", re.I)
_REFERENCE_WORD = re.compile(r"(?:section|article|clause|paragraph|schedule|exhibit|annex|appendix)s?\s*$", re.I)
_WITNESS = re.compile(r"IN WITNESS WHEREOF|In Witness Whereof")


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    text: str
    kind: str = CLAUSE
    number: str | None = None
    heading: str | None = None
    context: str = ""
    gaps: tuple[tuple[int, int], ...] = ()  # furniture inside [start, end): not part of `clean`
    fragment: bool = False  # starts without its own number: a list item, a continuation, a later piece

    @property
    def is_clause(self) -> bool:
        return self.kind == CLAUSE

    @property
    def clean(self) -> str:
        """The segment's words without the furniture inside it, whitespace collapsed."""
        parts, pos = [], self.start
        for s, e in self.gaps:
            parts.append(self.text[pos - self.start: s - self.start])
            pos = e
        parts.append(self.text[pos - self.start:])
        return normalize(" ".join(parts))

    @property
    def model_text(self) -> str:
        """A fragment with the heading and lead-in it needs; a numbered clause as written."""
        return with_context(self.clean, self.context) if self.fragment else self.clean

    @property
    def ref(self) -> str | None:
        """How a lawyer cites it: "Section 1.04 PERFORMANCE", "6.02(b) Termination"."""
        return " ".join(p for p in (self.number, self.heading) if p) or None


def normalize(text: str) -> str:
    """Collapse layout whitespace; what the model and the reader see."""
    return " ".join(text.split())


def with_context(text: str, context: str) -> str:
    """A clause as a model is given it: its context (heading, lead-in) on a line before it."""
    return f"{context}\n{text}" if context else text


@dataclass
class _Item:
    start: int
    end: int
    kind: str = CLAUSE
    marker: Marker | None = None
    heading: str | None = None  # its own heading
    heading_only: bool = False
    body: int = 0  # where its own words begin, after its number and heading
    number: str | None = None  # full number, inherited by unnumbered paragraphs
    section_heading: str | None = None  # own or inherited
    parent: int | None = None
    children: list[int] = field(default_factory=list)


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without the whitespace at its ends."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _blocks(masked: str) -> list[tuple[int, int]]:
    """Split at blank lines, and at single line breaks that begin a new item."""
    blocks: list[tuple[int, int]] = []
    for para in re.finditer(r"(?:[^\n]|\n(?![ \t]*\n))+", masked):
        base = para.start()
        lines = [(m.start() + base, m.end() + base) for m in re.finditer(r"[^\n]*\S[^\n]*", para.group())]
        if not lines:
            continue
        width = max(e - s for s, e in lines)
        cur = lines[0][0]
        if len(lines) > 1 and block_kind(para.group()) != CLAUSE:
            blocks.append(trim(masked, cur, lines[-1][1]))  # an address's lines stay one address
            continue
        for (ps, pe), (ls, le) in zip(lines, lines[1:]):
            prev = masked[ps:pe].strip()
            nxt = masked[ls:le].lstrip()
            # "... ARTICLE\n12 (INDEMNIFICATION)" is a reference wrapped onto a new line, not section 12
            marker = parse_marker(nxt)
            starts_item = marker is not None and not (
                _REFERENCE_END.search(prev) or (not marker.is_list and continues_sentence(prev)))
            # a line that ends a sentence well short of the paragraph's width was not wrapped; a
            # line ending in a colon leads into a list or a block (an address, bank details)
            ended = prev.endswith(":") or (prev.endswith((".", ";")) and len(masked[ps:pe].rstrip()) < 0.8 * width)
            heading = len(prev) < 80 and heading_text(prev) is not None and prev.upper() == prev
            field_line = prev.endswith(":") and block_kind(nxt) != CLAUSE and block_kind(prev) == CLAUSE
            if starts_item or ended or heading or field_line:
                blocks.append(trim(masked, cur, pe))
                cur = ls
        blocks.append(trim(masked, cur, lines[-1][1]))
    return [(s, e) for s, e in blocks if e > s]


def _join_page_breaks(text: str, masked: str, blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A passage cut by a page break (furniture between two blocks) is one passage again."""
    out: list[tuple[int, int]] = []
    for s, e in blocks:
        if out:
            ps, pe = out[-1]
            prev, nxt = masked[ps:pe].rstrip(), masked[s:e].lstrip()
            page_break = bool(text[pe:s].strip())
            open_end = not prev.endswith((".", ":", ";", "!", "?", '."', ".”", ".)")) and \
                not (len(prev) - prev.rfind("\n") < 90 and heading_text(prev[prev.rfind("\n") + 1:]))
            if open_end and (nxt[:1].islower() or (page_break and parse_marker(nxt) is None and
                                                   block_kind(nxt[:200]) == CLAUSE)):
                out[-1] = (ps, e)
                continue
        out.append((s, e))
    return out


class _Builder:
    """Turns the blocks of one contract into items, following its numbering."""

    def __init__(self, masked: str):
        self.masked = masked
        self.items: list[_Item] = []
        self.outline = Outline()
        self.loose: int | None = None  # the latest unnumbered heading, heading what follows it

    def add_block(self, s: int, e: int) -> None:
        if not re.search(r"[^\W\d_]{2}", self.masked[s:e]):
            return  # a ruler, "[***]" alone, a stray number: nothing to read
        if is_contents(self.masked, s, e):
            self.items.append(_Item(s, e, kind=CONTENTS))
            return
        toc = inline_contents(self.masked, s, e)
        if toc is not None:
            for a, b in ((s, toc[0]), toc, (toc[1], e)):
                a, b = trim(self.masked, a, b)
                if b > a and (a, b) == trim(self.masked, *toc):
                    self.items.append(_Item(a, b, kind=CONTENTS))
                elif b > a:
                    self.add_block(a, b)
            return
        witness = _WITNESS.search(self.masked, s + 1, e)
        if witness is not None:  # the signature block run into the last clause's line
            self.add_block(*trim(self.masked, s, witness.start()))
            self.add_block(witness.start(), e)
            return
        kind = block_kind(self.masked[s:e])
        if kind != CLAUSE:
            self._add(_Item(s, e, kind=kind))
            return
        pos = s
        while pos < e:
            marker = parse_marker(self.masked, pos, self.outline.labels())
            if marker is not None and pos > s and not self.outline.continues(marker):
                marker = None
            end = self._next_marker(pos, marker, e)
            cut = field_start(self.masked, pos, end)
            if cut is not None:
                self._add_clause(pos, cut, marker)
                head_end = trim(self.masked, cut, end)
                self._add(_Item(head_end[0], head_end[1], kind=block_kind(self.masked[cut:end])))
            else:
                self._add_clause(pos, end, marker)
            pos = trim(self.masked, end, e)[0]

    def _next_marker(self, pos: int, marker: Marker | None, end: int) -> int:
        probe = Outline(list(self.outline.stack), self.outline.last_decimal)
        if marker is not None:
            probe.push(marker, -1)
        labels = probe.labels()
        for m in _INLINE_AT.finditer(self.masked, (marker.end if marker else pos) + 1, end):
            cand = parse_marker(self.masked, m.end(), labels)
            if cand is None:
                continue
            numbered_heading = cand.style.startswith("decimal") and not m.group("caps") and \
                _upper_heading(self.masked, cand, end)
            if not probe.continues(cand) and not numbered_heading:
                continue  # out of sequence: a reference, unless a numbered upper-case heading follows
            if m.group("caps") and not cand.style.startswith("decimal"):
                continue  # after an upper-case heading only a section number starts a clause
            before = self.masked[max(0, m.start() - 12):m.start()]
            if (m.group("conj") and not cand.is_list) or _REFERENCE_WORD.search(before):
                continue  # "; or (ii)" starts a list item; "Section 3.5 (a)", "ARTICLE 12 (INDEMNITY)" are references
            return m.end()
        return end

    def _add_clause(self, s: int, e: int, marker: Marker | None) -> None:
        s, e = trim(self.masked, s, e)
        if e <= s:
            return
        item = _Item(s, e, marker=marker, body=s)
        if marker is not None:
            item.heading, item.body = split_heading(self.masked, marker.end, e)
            item.heading_only = not self.masked[item.body:e].strip()
        else:
            item.heading = heading_text(self.masked[s:e])
            item.heading_only = item.heading is not None and len(self.masked[s:e]) <= 100
            if not item.heading_only:
                item.heading = None
        self._add(item)

    def _add(self, item: _Item) -> None:
        prev = self.items[-1] if self.items else None
        # a heading is joined by the unnumbered heading lines under it ("ARTICLE 5" / "TERMINATION"),
        # then by its first paragraph; a heading or a label ("If to Acme:") joins the address under it
        if prev is not None and prev.heading_only and prev.kind == CLAUSE and item.marker is None:
            if item.kind != CLAUSE:
                self._extend(prev, item.end, item.kind)
                if prev.marker is None:  # "If to Acme:" is part of the address, not a heading of the contract
                    prev.heading = prev.section_heading = None
                    if self.loose == len(self.items) - 1:
                        self.loose = None
                    stack = self.outline.stack
                    prev.parent = None if item.kind == "signature" or not stack else stack[-1][1]
                    prev.number = self.items[prev.parent].number if prev.parent is not None else None
                    if prev.parent is not None:
                        prev.section_heading = self.items[prev.parent].section_heading
                return
            self._extend(prev, item.end, CLAUSE, heading=item.heading if item.heading_only else None,
                         still_heading=item.heading_only)
            prev.body = item.end if item.heading_only else item.start
            return
        index = len(self.items)
        if item.kind == CLAUSE and item.marker is not None:
            item.parent = self.outline.push(item.marker, index)
            if item.marker.style in ("article", "schedule") or (item.marker.depth == 1 and item.heading):
                self.loose = None
            if self.loose is not None and (item.parent is None or self.loose > item.parent):
                item.parent = self.loose  # "PERFORMANCE" heads the sections after it
            item.number = self.outline.path()
        elif item.kind == CLAUSE and item.heading_only:
            self.outline.close_lists()
            item.parent = None
            self.loose = index
        elif item.kind == "signature":
            self.outline.close_lists()
            item.parent = None  # a signature block belongs to the whole contract
        else:
            section = self.outline.close_lists() if item.kind == CLAUSE else (
                self.outline.stack[-1][1] if self.outline.stack else None)
            item.parent = self.loose if self.loose is not None and (section is None or self.loose > section) \
                else section
            item.number = self.items[item.parent].number if item.parent is not None else None
            if item.kind == CLAUSE and _LEAD_IN_END.search(self.masked[item.start:item.end].rstrip()[-40:]):
                self.outline.open_lead_in(index)  # "The business shall include:" parents "(a) ..."
        parent = self.items[item.parent] if item.parent is not None else None
        item.section_heading = item.heading or (parent.section_heading if parent else None)
        if parent is not None:
            parent.children.append(index)
        self.items.append(item)

    def _extend(self, item: _Item, end: int, kind: str, heading: str | None = None, still_heading=False) -> None:
        item.end = end
        item.kind = kind
        if heading:
            item.heading = f"{item.heading} {heading}" if item.heading else heading
            item.section_heading = item.heading
        item.heading_only = still_heading and kind == CLAUSE
        if not item.heading_only and item.marker is None and self.loose == len(self.items) - 1:
            self.loose = None  # a heading joined to its paragraph is that paragraph's heading only


def _upper_heading(masked: str, marker: Marker, end: int) -> bool:
    heading, _ = split_heading(masked, marker.end, end)
    return bool(heading) and heading.upper() == heading


def _last_sentence(text: str, limit: int = 220) -> str:
    parts = [p for p in re.split(r"(?<=[.;])\s+(?=[A-Z(\"“])", text) if p.strip()]
    last = parts[-1] if parts else text
    return last if len(last) <= limit else "…" + last[-limit:].split(" ", 1)[-1]


def _context(items: list[_Item], masked: str, index: int, own_text: str) -> str:
    """The headings above an item, and the lead-in of the list it is an item of."""
    parts: list[str] = []
    item = items[index]
    child_is_list = item.marker is not None and item.marker.is_list
    p = item.parent
    while p is not None:
        a = items[p]
        text = normalize(masked[a.start:a.end])
        head = " ".join(x for x in (a.marker.text if a.marker else None, a.heading) if x)
        if a.heading_only:
            part = text
        elif child_is_list:  # "(b) upon a change of control" needs "may be terminated only:"
            part = text if len(text) <= 300 else " … ".join(x for x in (head, _last_sentence(text)) if x)
            part = part.replace("… …", "…")
        else:
            part = head
        if part and part not in own_text and not any(part in q for q in parts):
            parts.insert(0, part)
        child_is_list = a.marker is not None and a.marker.is_list
        p = a.parent
    while len(" … ".join(parts)) > CONTEXT_CHARS and len(parts) > 1:
        parts.pop(0)  # the nearest heading and lead-in matter most
    context = " … ".join(parts)
    return context if len(context) <= CONTEXT_CHARS else "…" + context[-CONTEXT_CHARS:].split(" ", 1)[-1]


def _subtree_end(items: list[_Item], index: int) -> tuple[int, bool, bool]:
    """Index just past an item's descendants; whether they form a list (list items, and
    paragraphs after them); whether there is a list item among them."""
    j, listy, items_seen = index + 1, True, False
    ancestors = {index}
    while j < len(items) and items[j].parent in ancestors:
        it = items[j]
        if it.kind != CLAUSE or (it.marker is not None and not it.marker.is_list) or it.heading_only:
            listy = False
        items_seen |= it.marker is not None and it.marker.is_list
        ancestors.add(j)
        j += 1
    return j, listy and items_seen, items_seen


def _pack(masked: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Split a long passage at sentence ends into pieces of at most `max_chars`."""
    if end - start <= max_chars:
        return [(start, end)]
    out: list[tuple[int, int]] = []
    cur, last_cut = start, None
    for m in _SENTENCE_END.finditer(masked, start, end):
        if m.end() - cur > max_chars and last_cut is not None and last_cut > cur:
            out.append((cur, last_cut))
            cur = last_cut
        last_cut = m.end()
    if end - cur > max_chars and last_cut is not None and last_cut > cur:
        out.append((cur, last_cut))
        cur = last_cut
    out.append((cur, end))
    final: list[tuple[int, int]] = []
    for a, b in out:  # one sentence longer than the limit: cut at whitespace
        while b - a > 2 * max_chars:
            cut = masked.rfind(" ", a, a + max_chars)
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
    furniture: bool = False,
) -> list[Segment]:
    """The contract's segments in order. With `furniture`, page furniture that stands alone
    (not inside a clause's span) comes back too, as segments of kind "furniture"."""
    spans = find_furniture(text)
    masked = mask(text, spans)
    builder = _Builder(masked)
    for s, e in _join_page_breaks(text, masked, _blocks(masked)):
        builder.add_block(s, e)
    items = builder.items

    units: list[tuple[int, int, int, str]] = []  # (start, end, item index, kind)
    i = 0
    while i < len(items):
        it = items[i]
        if it.kind != CLAUSE:
            j = i + 1  # one address, signature or bank-details block, however many paragraphs
            while j < len(items) and items[j].kind == it.kind:
                j += 1
            units.append((it.start, items[j - 1].end, i, it.kind))
            i = j
            continue
        j, listy, has_list = _subtree_end(items, i)
        if j > i + 1 and listy and items[j - 1].end - it.start <= soft_max_chars and not it.heading_only:
            units.append((it.start, items[j - 1].end, i, CLAUSE))  # a lead-in and its short list
            i = j
            continue
        own = normalize(masked[it.start:it.end])
        body = normalize(masked[it.body:it.end])
        # a lead-in of one sentence ("This Agreement may be terminated only:") says nothing on its
        # own: its list items carry it as context, and it is shown as their heading
        lead_in = has_list and len(own) <= LEAD_IN_CHARS and _LEAD_IN_END.search(own) and \
            not _SENTENCE_END.search(body)
        units.append((it.start, it.end, i, HEADING if it.heading_only or lead_in else CLAUSE))
        i += 1

    out: list[Segment] = []
    for s, e, index, kind in units:
        item = items[index]
        pieces = _pack(masked, s, e, max_chars) if kind == CLAUSE else [(s, e)]
        for k, (a, b) in enumerate(pieces):
            a, b = trim(masked, a, b)
            words = normalize(masked[a:b])
            if kind == CLAUSE and (len(words) < min_chars or sum(c.isalpha() for c in words) < 10):
                continue
            if not re.search(r"[A-Za-z\u00c0-\uffff]{2}", words):
                continue
            context = _context(items, masked, index, words)
            if k > 0:  # a later piece of a long clause: its number and heading say where it is
                head = " ".join(x for x in (item.marker.text if item.marker else None, item.heading) if x)
                context = " … ".join(x for x in (context, head) if x)
            gaps = tuple((max(fs, a), min(fe, b)) for fs, fe in spans if fs < b and fe > a)
            fragment = kind == CLAUSE and bool(context) and (k > 0 or item.marker is None or item.marker.is_list)
            out.append(Segment(a, b, text[a:b], kind, item.number, item.section_heading, context, gaps, fragment))
    if furniture:
        out += [Segment(s, e, text[s:e], FURNITURE) for s, e in spans
                if not any(seg.start <= s and e <= seg.end for seg in out)]
        out.sort(key=lambda seg: seg.start)
    return out
