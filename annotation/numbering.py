"""Clause numbers and headings, as contracts write them.

    m = parse_marker("6.02. Termination. This Agreement may be terminated only:")
    m.label, m.style                 # "6.02", "decimal2"
    split_heading(text, m.end)       # ("Termination", offset of "This Agreement ...")

A marker has a *style* (how it is written: "decimal2" for 6.02, "paren-lower" for (b),
"paren-roman" for (iv), "article" for ARTICLE V, "dot-upper" for A.) and a *label* ("6.02",
"b", "iv", "V"). `Outline` follows the numbering through a contract, so that "(b)" under
6.02 is known as 6.02(b), and so that a marker found inside a line ("... as follows: 1.1
Term ...") is accepted only when it continues the numbering: "Section 1 of Amendment"
is a reference, not a new clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
_ROMAN_RE = re.compile(r"^(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})$")

KEYWORD_STYLES = {
    "article": "article", "part": "article", "chapter": "article",
    "exhibit": "schedule", "schedule": "schedule", "annex": "schedule", "appendix": "schedule",
    "attachment": "schedule", "addendum": "schedule",
}
LIST_STYLES = ("paren", "half", "dot-lower", "dot-roman", "dot-upper", "dot-ROMAN", "bullet")
LEAD_IN = "lead-in"  # an unnumbered sentence introducing a list: the list's parent in the outline

_KEYWORD = re.compile(
    r"(?P<kw>ARTICLE|Article|PART|Part|CHAPTER|Chapter|EXHIBIT|Exhibit|SCHEDULE|Schedule|ANNEX|Annex|APPENDIX|Appendix|"
    r"ATTACHMENT|Attachment|ADDENDUM|Addendum|SECTION|Section|CLAUSE|Clause)[ \t]+"
    r"(?P<id>[IVXLC]{1,7}\b|\d{1,3}(?:\.\d{1,3}){0,4}|[A-Z](?:-\d{1,2})?\b)\.?(?:[ \t]*[:.\-–—])?"
)
_DECIMAL = re.compile(r"(?P<id>\d{1,3}(?:\.\d{1,3}){0,4})(?P<dot>\.?)(?=[ \t]|$)")
_PAREN = re.compile(r"\((?P<id>[a-z]{1,2}|[ivxlc]{1,6}|[A-Z]{1,2}|[IVXLC]{1,6}|\d{1,2})\)")
_HALF = re.compile(r"(?P<id>[a-z]|[ivx]{1,5}|\d{1,2})\)(?=[ \t])")
_DOT_LETTER = re.compile(r"(?P<id>[A-Z]|[a-z]|[ivx]{2,5}|[IVX]{2,5})\.(?=[ \t]+\S)")
_BULLET = re.compile(r"[●•▪◦·‣∙]|[-–*](?=[ \t]+[A-Za-z])")
_AFTER = re.compile(r"[ \t]*")

# words after which a capitalised phrase is a heading run into its clause ("Term This agreement ...")
_STARTERS = (
    "This|The|Each|Either|Neither|Any|All|If|In|Subject|Unless|No|Notwithstanding|Upon|During|Except|Where|"
    "Without|Such|Nothing|Both|For|On|At|Following|Prior|As|From|Within|To|It|Its|We|You|Buyer|Seller"
)
_SMALL = {"of", "and", "or", "the", "to", "for", "in", "on", "by", "a", "an", "with", "under", "upon", "from", "at",
          "its", "their", "as", "per", "not", "non", "&", "-", "–", "—", "/", "vs", "v"}


def continues_sentence(line: str) -> bool:
    """Whether a line stops mid-sentence on a word that needs what follows ("... set forth in",
    "... PURSUANT TO PARAGRAPH"): a number at the start of the next line is then a reference."""
    words = line.split()
    return bool(words) and words[-1].lower().strip("\"'“”(),") in (_SMALL | _REFERENCES)
_REFERENCES = {"section", "sections", "article", "articles", "clause", "clauses", "paragraph", "paragraphs",
               "schedule", "exhibit", "annex", "appendix", "attachment", "item", "part"}
_VERBS = re.compile(r"\b(?:shall|will|may|must|is|are|was|were|be|has|have|agrees?|means|hereby)\b", re.I)


def roman_value(s: str) -> int | None:
    s = s.lower()
    if not _ROMAN_RE.match(s):
        return None
    total = 0
    for a, b in zip(s, s[1:] + " "):
        total += -_ROMAN_VALUES[a] if b != " " and _ROMAN_VALUES[a] < _ROMAN_VALUES[b] else _ROMAN_VALUES[a]
    return total


def _to_roman(n: int) -> str:
    out = ""
    for value, sym in ((100, "c"), (90, "xc"), (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"),
                       (1, "i")):
        while n >= value:
            out, n = out + sym, n - value
    return out


@dataclass(frozen=True)
class Marker:
    text: str  # as written, trailing punctuation included: "6.02.", "(b)", "ARTICLE V -"
    label: str  # the number itself: "6.02", "b", "V", "1.04"
    style: str  # "decimal2", "paren-lower", "article", ...
    keyword: str = ""  # "Section", "ARTICLE", ... when written with one
    end: int = 0  # offset just after the marker and the spaces after it

    @property
    def number(self) -> str:
        """The number as a lawyer cites it: "Section 1.04", "Article V", "6.02", "(b)"."""
        if self.keyword:
            return f"{self.keyword} {self.label}"
        if self.style.startswith("paren") or self.style.startswith("half"):
            return f"({self.label})"
        return self.label

    @property
    def is_list(self) -> bool:
        return self.style.startswith(LIST_STYLES)

    @property
    def is_lead_in(self) -> bool:
        return self.style == LEAD_IN

    @property
    def depth(self) -> int:
        return int(self.style[7:]) if self.style.startswith("decimal") else 0


def _letter_style(prefix: str, ident: str, prev_label: str | None) -> str:
    """Style of a one-part label: a lone i/v/x after h/u/w is a letter; otherwise a roman numeral wins."""
    lower = ident.islower()
    if ident.isdigit():
        return f"{prefix}-digit"
    if roman_value(ident) is not None:
        if len(ident) == 1 and prev_label and len(prev_label) == 1 and \
                ord(ident.lower()) == ord(prev_label.lower()) + 1:
            return f"{prefix}-{'lower' if lower else 'upper'}"
        return f"{prefix}-{'roman' if lower else 'ROMAN'}"
    return f"{prefix}-{'lower' if lower else 'upper'}"


def parse_marker(text: str, pos: int = 0, prev_labels: dict[str, str] | None = None) -> Marker | None:
    """The numbering marker starting at `pos`, if any. `prev_labels` (style -> last label seen)
    decides whether "(i)" follows "(h)" or starts a roman list."""
    prev_labels = prev_labels or {}

    def done(m: re.Match, label: str, style: str, keyword: str = "") -> Marker:
        end = _AFTER.match(text, m.end()).end()
        return Marker(text[pos:m.end()].strip(), label, style, keyword, end)

    m = _KEYWORD.match(text, pos)
    if m:
        kw, ident = m.group("kw"), m.group("id")
        style = KEYWORD_STYLES.get(kw.lower())
        if style == "schedule" and "." in ident:
            return None  # "Exhibit 10.14": the filing's exhibit number, not a part of the contract
        if style is None:  # Section / Clause: a decimal with a keyword
            if not ident[0].isdigit():
                return None
            style = f"decimal{ident.count('.') + 1}"
        return done(m, ident, style, kw)
    m = _DECIMAL.match(text, pos)
    if m:
        ident = m.group("id")
        sub = _PAREN.match(text, _AFTER.match(text, m.end()).end()) if "." in ident else None
        if sub is not None:  # "3.5 (b)": item (b) of section 3.5, written with its section's number
            inner = parse_marker(text, sub.start(), prev_labels)
            if inner is not None:
                return Marker(text[pos:sub.end()].strip(), inner.label, inner.style, "", inner.end)
        rest = text[m.end(): m.end() + 3].lstrip(" \t")
        # "5 days" is a number in a sentence; "5. Term", "5 TERM", "1.1 "Affiliate"" are clauses
        if not m.group("dot") and "." not in ident and not (rest[:1].isupper() or rest[:1] in "\"“("):
            return None
        if rest[:1].islower() and "." not in ident:
            return None
        return done(m, ident, f"decimal{ident.count('.') + 1}")
    for pattern, prefix in ((_PAREN, "paren"), (_HALF, "half"), (_DOT_LETTER, "dot")):
        m = pattern.match(text, pos)
        if m:
            ident = m.group("id")
            previous = prev_labels.get(f"{prefix}-{'lower' if ident.islower() else 'upper'}")
            return done(m, ident, _letter_style(prefix, ident, previous))
    m = _BULLET.match(text, pos)
    if m:
        return done(m, "•", "bullet")
    return None


def first_label(style: str) -> str:
    kind = style.split("-", 1)[-1]
    return {"lower": "a", "upper": "A", "roman": "i", "ROMAN": "I", "digit": "1"}.get(kind, "")


def next_label(label: str, style: str) -> str:
    kind = style.split("-", 1)[-1]
    if kind == "digit":
        return str(int(label) + 1)
    if kind in ("roman", "ROMAN"):
        n = roman_value(label)
        nxt = _to_roman((n or 0) + 1)
        return nxt if kind == "roman" else nxt.upper()
    if len(label) == 2 and label[0] == label[1]:  # (aa), (bb) after (z)
        return chr(ord(label[0]) + 1) * 2
    return chr(ord(label[-1]) + 1) if label[-1] not in "zZ" else ("aa" if label.islower() else "AA")


def _decimal_follows(path: tuple[int, ...], last: tuple[int, ...]) -> bool:
    """Whether section `path` can come next after section `last`: its first or second
    sub-section, or a later number at some level, skipping at most two (a contract's
    numbering has gaps where a section was deleted or the text lost a line)."""
    if len(path) == len(last) + 1 and path[:-1] == last and path[-1] <= 2:
        return True
    for i in range(min(len(path), len(last))):
        if path[:i] == last[:i] and last[i] < path[i] <= last[i] + 3:
            return len(path) == i + 1 or all(p <= 1 for p in path[i + 1:])
    return False


@dataclass
class Outline:
    """Where the numbering of a contract stands: the open markers, outermost first."""

    stack: list[tuple[Marker, int]] = field(default_factory=list)  # (marker, item index)
    last_decimal: tuple[int, ...] | None = None

    def labels(self) -> dict[str, str]:
        return {m.style: m.label for m, _ in self.stack}

    def continues(self, marker: Marker) -> bool:
        """Whether a marker found inside a line continues the numbering (else it is a reference)."""
        if marker.style.startswith("decimal"):
            path = tuple(int(p) for p in marker.label.split("."))
            if self.last_decimal is None:
                return path in {(1,), (1, 1)} or bool(marker.keyword)
            return _decimal_follows(path, self.last_decimal)
        if marker.style in ("article", "schedule"):
            return True
        for m, _ in reversed(self.stack):
            if m.style == marker.style:
                return marker.label == next_label(m.label, m.style)
        return marker.label == first_label(marker.style) or marker.style == "bullet"

    def push(self, marker: Marker, index: int) -> int | None:
        """Open `marker` (item `index`); returns the index of the item it sits under, if any."""
        if marker.style in ("article", "schedule"):
            self.stack = []
            self.last_decimal = None
        elif marker.style.startswith("decimal"):
            path = tuple(int(p) for p in marker.label.split("."))
            self.last_decimal = path
            keep = []
            for m, i in self.stack:
                if m.style in ("article", "schedule"):
                    keep.append((m, i))
                elif m.style.startswith("decimal") and m.depth < marker.depth and \
                        marker.label.startswith(m.label + "."):
                    keep.append((m, i))
            self.stack = keep
        else:
            for k in range(len(self.stack) - 1, -1, -1):
                if self.stack[k][0].style == marker.style:
                    del self.stack[k:]
                    break
        parent = self.stack[-1][1] if self.stack else None
        self.stack.append((marker, index))
        return parent

    def open_lead_in(self, index: int) -> None:
        """Item `index`, unnumbered, introduces the list that follows it."""
        self.close_lists()
        self.stack.append((Marker("", "", LEAD_IN), index))

    def close_lists(self) -> int | None:
        """An unnumbered paragraph after a list belongs to the section, not to its last item."""
        while self.stack and (self.stack[-1][0].is_list or self.stack[-1][0].is_lead_in):
            self.stack.pop()
        return self.stack[-1][1] if self.stack else None

    def path(self) -> str | None:
        """The full number of the innermost open marker: "6.02(b)(ii)", "Section 1.04", "3.A"."""
        if not self.stack:
            return None
        base = ""
        for m, _ in self.stack:
            if m.is_lead_in:
                continue
            if not m.is_list:
                base = m.number
            elif m.style == "bullet":
                continue
            elif m.style.startswith(("paren", "half")):
                base += f"({m.label})"
            else:
                base = f"{base}.{m.label}" if base else f"{m.label}."
        return base or None


def _is_title_word(w: str) -> bool:
    core = w.strip("\"'“”‘’(),")
    return bool(core) and (core[0].isupper() or core[0].isdigit() or core.lower() in _SMALL)


def _title_run(words: list[str]) -> bool:
    return (bool(words) and len(words) <= 10 and words[0][:1].isupper()
            and all(_is_title_word(w) for w in words) and not _VERBS.search(" ".join(words)))


def heading_text(s: str) -> str | None:
    """`s` as a heading when the whole of it reads as one ("TERMINATION", "Assigned Rights.")."""
    s = " ".join(s.split()).rstrip(".:;- –—")
    if not s or len(s) > 90 or not re.search(r"[A-Za-z]{2}", s) or s[0] in "\"“'(":
        return None
    letters = [c for c in s if c.isalpha()]
    last = s.split()[-1].lower().strip("\"'“”(),")
    if last in _SMALL or last in _REFERENCES:
        return None  # "... PURSUANT TO PARAGRAPH": a capitalised sentence wrapped onto the next line
    if all(c.isupper() for c in letters) and len(letters) >= 3:
        return s if len(s.split()) <= 12 else None
    words = s.split()
    if "." in s or "," in s or ";" in s:
        return None
    return s if _title_run(words) and len(letters) >= 3 else None


def split_heading(text: str, pos: int, end: int) -> tuple[str | None, int]:
    """A heading written at the start of text[pos:end] ("TERM.", "Termination.", "Commencement
    This agreement ..."): (heading, offset where the clause's own words begin)."""
    rest = text[pos:end]
    m = re.match(r"([A-Z][A-Z0-9&,'’/()\- ]{1,90}?)(?:\.|:|[ \t]{2,}|[ \t]*[-–—][ \t]|$)[ \t]*", rest)
    if m and sum(c.isalpha() for c in m.group(1)) >= 3 and not re.search(r"[a-z]", m.group(1)):
        head = " ".join(m.group(1).split()).strip(" ,")
        if len(head.split()) <= 14 and (m.end() == len(rest) or not rest[m.end():m.end() + 1].islower()):
            return head, pos + m.end()
    m = re.match(r"([A-Z][^.:;\n]{0,90}?)(?:\.|:|[ \t]+[-–—])[ \t]+(?=[A-Z\"“(]|$)", rest)
    if m and _title_run(m.group(1).split()):
        return " ".join(m.group(1).split()), pos + m.end()
    m = re.match(rf"([A-Z][^.:;,\n]{{0,60}}?)[ \t]+(?=(?:{_STARTERS})\b[ \t]+\S)", rest)
    if m and len(m.group(1).split()) <= 6 and not _VERBS.search(m.group(1)):
        return " ".join(m.group(1).split()), pos + m.end()  # "Payment terms Unless separate ...": sentence case too
    whole = heading_text(rest)
    if whole:
        return whole, end
    return None, pos
