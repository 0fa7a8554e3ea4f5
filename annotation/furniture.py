"""Page furniture: what a page adds to a contract that is not the contract.

    spans = find_furniture(text)        # sorted, non-overlapping (start, end) offsets into text
    clean = mask(text, spans)           # same length, furniture blanked: offsets stay valid

EDGAR dumps and PDF text layers carry, on every page: page numbers ("3", "-28-", "Page 2 of
6", "Page 25/110", "ii"), EDGAR banners ("Source: ACME CORP, 8-K/A, 10/18/2016"),
initials lines ("BPC Initials ___ Sanofi Pasteur Initials ___"), and running headers and
footers ("ODM Supply Agreement 7 Organic Preparations INC. & ...", "CONFIDENTIAL
Execution Version"), on a line of their own or glued to the end or start of the page's
text. Left in, they land inside a clause (often mid-sentence, where a page breaks) and
change what the clause seems to be about.

How they are found, from surest to most inferred:
1. patterns that are furniture wherever they occur: banners, "Page N of M", initials lines;
2. lines holding only a page number;
3. page edges: at each page break found so far (a banner, a page-number line, "Page N of
   M"), the page's last line may end with its page number (accepted only when the numbers
   run in sequence from break to break) and a running footer, and the next page's first
   line may start with a running header: a phrase (digits and roman numerals as
   wildcards) shared by the edges of at least three pages is cut wherever it sits at a
   page edge, and anywhere when it is long enough to be unmistakable;
4. full lines repeated far apart (a header or footer of a text layer without banners): at
   least three times when they read like furniture ("Confidential", "Execution Version",
   redaction legends), at least five when they are a title; never field labels, signature
   lines, numbered lines or sentences, which repeat in real text.

Every span is a run of characters inside one line, so blanking it never joins lines.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

from .numbering import roman_value

_BANNER = re.compile(r"Source:[ \t]+[^\n]{1,160}?,[ \t]*[^,\n]{1,30},[ \t]*\d{1,2}/\d{1,2}/\d{2,4}")
_PAGE_OF = re.compile(r"\b(?:Page|PAGE|Pg\.?)[ \t]*\d{1,4}[ \t]*(?:of|OF|/)[ \t]*\d{1,4}\b|"
                      r"\b\d{1,4}[ \t]*[│|][ \t]*Page\b")
_INITIALS = re.compile(r"^[^\n]{0,80}?\bInitial(?:s|ed)\b[ \t]*:?[ \t]*_{2,}[^\n]*$", re.MULTILINE)
_ROMAN_NUM = r"(?=[ivxl])(?:xl|l?x{0,3})(?:ix|iv|v?i{0,3})"  # i..xlix: front-matter page numbers
_PAGE_LINE = re.compile(
    rf"^[ \t]*(?:-[ \t]*)?(?:(?:Page|PAGE|Pg\.?)[ \t]*)?(?:\d{{1,4}}|{_ROMAN_NUM}|[A-Z]-\d{{1,3}})(?:[ \t]*-)?"
    r"(?:[ \t]*(?:of|/)[ \t]*\d{1,4})?[ \t]*$",
    re.MULTILINE,
)
_TRAILING_NUMBER = re.compile(rf"(?:^|[ \t])(?:-[ \t]*)?(\d{{1,3}}|{_ROMAN_NUM})(?:[ \t]*-)?[ \t]*$")
_WORD = re.compile(r"\S+")
_ROMAN = re.compile(rf"^{_ROMAN_NUM}$")
_FIELD_LINE = re.compile(r"(?::|_{2,}|\[\*+\]|\*+)\s*$")
_KEYWORD_START = re.compile(r"^(?:article|section|clause|exhibit|schedule|annex|appendix|part|amendment)\b", re.I)
_FURNITURE_WORDS = re.compile(
    r"confidential|proprietary|treatment|redact|omitted|execution (?:copy|version)|\bdraft\b|\bpage\b|"
    r"filed (?:separately|with)|exchange commission|\binitial|\.(?:docx?|lwp|pdf|wpd)\b|\bversion\b|"
    r"table of contents", re.I)
_SIGNATURE_WORDS = re.compile(
    r"\b(?:by|name|title|its|date)\s*:|/s/|\baccepted\b|\bagreed\b|on behalf of|in witness|\bsigned\b", re.I)
_VERBS = re.compile(r"\b(?:is|are|was|were|be|been|has|have|executed|made|entered)\b", re.I)
_CLAUSE_WORDS = re.compile(r"\b(?:shall|will|agrees?|must|may)\b", re.I)
_NUMBERED_LINE = re.compile(r"^\s*(?:\(?[a-zA-Z0-9]{1,4}[.)]|\d+(?:\.\d+)*\s|(?:article|section|exhibit|schedule)\b)",
                            re.I)

_FAR = 1 << 62
MIN_EDGES = 3  # a running header/footer repeats on at least this many page edges
LONG_PHRASE = 20  # characters: a repeated edge phrase this long is cut wherever it appears


def _template(token: str) -> str:
    """A token with its page-varying parts as wildcards: digits and lone roman numerals."""
    t = token.lower()
    if _ROMAN.match(t.strip("-.,()")):
        return "#"
    return re.sub(r"\d+", "#", t)


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in " \t":
        s += 1
    while e > s and text[e - 1] in " \t":
        e -= 1
    return s, e


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    return text.rfind("\n", 0, pos) + 1, (text.find("\n", pos) + 1 or len(text) + 1) - 1


def _covered(spans: list[tuple[int, int]], s: int, e: int) -> bool:
    i = bisect.bisect_right(spans, (s, _FAR)) - 1
    return i >= 0 and spans[i][0] <= s and e <= spans[i][1]


def _visible_tokens(text: str, s: int, e: int, found: list[tuple[int, int]]) -> list[re.Match]:
    return [m for m in _WORD.finditer(text, s, e) if not _covered(found, m.start(), m.end())]


def _edge_lines(text: str, lines: list[tuple[int, int]], breaks: list[tuple[int, int]],
                found: list[tuple[int, int]]):
    """For each page break (a furniture span), the last line with content before it and the
    first after it, as (start, end) or None; a line holding the break counts on its own side."""
    starts = [s for s, _ in lines]
    visible = [bool(_visible_tokens(text, s, e, found)) for s, e in lines]
    out = []
    for bs, be in breaks:
        i = bisect.bisect_right(starts, bs) - 1
        j = bisect.bisect_right(starts, max(be - 1, bs)) - 1
        before = next((lines[k] for k in range(i, max(i - 8, -1), -1)
                       if visible[k] and (k < i or _visible_tokens(text, lines[k][0], bs, found))), None)
        after = next((lines[k] for k in range(j, min(j + 8, len(lines)))
                      if visible[k] and (k > j or _visible_tokens(text, be, lines[k][1], found))), None)
        out.append((before, after))
    return out


def _sequenced_page_numbers(text: str, edges, found) -> list[tuple[int, int]]:
    """Trailing page numbers of page-final lines, kept only where they run in sequence."""
    cands = []
    for k, (before, _) in enumerate(edges):
        if before is None:
            continue
        toks = _visible_tokens(text, before[0], before[1], found)
        if len(toks) < 2:
            continue
        m = _TRAILING_NUMBER.search(text, toks[-1].start() - 1 if toks[-1].start() else 0, toks[-1].end())
        if m is None:
            continue
        raw = m.group(1)
        value = int(raw) if raw.isdigit() else roman_value(raw)
        if value is not None:
            cands.append((k, value, raw.isdigit(), _trim(text, m.start(), m.end())))
    keep = []
    for i, (k, v, arabic, span) in enumerate(cands):
        near = [c for c in cands[max(0, i - 3): i + 4] if c[0] != k and c[2] == arabic]
        if any(v2 - v == k2 - k for k2, v2, _, _ in near):
            keep.append(span)
    return keep


def _edge_phrases(text: str, edges, found) -> list[tuple[tuple[str, ...], str]]:
    """Templated token runs shared by the ends ('tail') or starts ('head') of >= MIN_EDGES pages.

    The run with the most pages wins; it is then extended while it keeps most of its pages,
    so a footer is cut whole but the last clause of a page is not taken along with it."""
    phrases = []
    for side in ("tail", "head"):
        counts: dict[tuple[str, ...], set[int]] = defaultdict(set)
        raw: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        whole: Counter = Counter()  # edges where the phrase is all the line holds, but for furniture
        for k, (before, after) in enumerate(edges):
            line = before if side == "tail" else after
            if line is None:
                continue
            matches = _visible_tokens(text, line[0], line[1], found)
            words = [m.group() for m in matches]
            toks = [_template(w) for w in words]
            # the phrase runs up to furniture already found on its line ("Title   Page 2 of 75")
            touches = bool(matches) and any(
                (matches[-1].end() <= a < line[1]) if side == "tail" else (line[0] <= b <= matches[0].start())
                for a, b in found)
            for n in range(1, min(len(toks), 25) + 1):
                key = tuple(toks[-n:] if side == "tail" else toks[:n])
                counts[key].add(k)
                raw[key].append(tuple(words[-n:] if side == "tail" else words[:n]))
                whole[key] += n == len(toks) or touches

        def usable(key: tuple[str, ...]) -> bool:
            chars = sum(len(t) for t in key) + len(key) - 1
            if chars < 6 or not any(re.search(r"[a-z]{2}", t) for t in key):
                return False
            joined = " ".join(key)
            if _KEYWORD_START.match(joined) or (side == "head" and re.fullmatch(r"[#.()\-]+", key[0])):
                return False  # a page that starts or ends with a numbered clause or a reference
            if _SIGNATURE_WORDS.search(joined) or _CLAUSE_WORDS.search(joined):
                return False  # letters of one filing ending alike; a clause's words are text
            if "#" in key and _page_numbered(key, raw[key]):
                return True  # a page number grows from page to page; a date or a version does not
            # "this Agreement." ending three pages is chance; a sentence repeated is text: without a
            # page number a header or footer is a legend ("Confidential ...") or a title
            if _FURNITURE_WORDS.search(joined):
                return len(key) >= 3
            # a running title stands alone or beside a page number; "This Agreement" opening letters does not
            return len(key) >= 3 and _title_like(raw[key][0]) and whole[key] >= 0.8 * len(counts[key])
        need = max(MIN_EDGES, 0.3 * len(edges))
        cands = [(len(pages), len(key), key) for key, pages in counts.items() if len(pages) >= need and usable(key)]
        if not cands:
            continue
        support, _, best = max(cands)
        for n_pages, _, key in sorted(cands, key=lambda c: -c[1]):
            grows = key[-len(best):] == best if side == "tail" else key[: len(best)] == best
            if grows and n_pages >= 0.8 * support:
                best = key
                break
        phrases.append((best, side))
    return phrases


def _title_like(words: tuple[str, ...]) -> bool:
    alpha = [w for w in words if re.match(r"[^\W\d_]", w)]
    return len(words) <= 10 and bool(alpha) and sum(w[0].isupper() for w in alpha) >= 0.6 * len(alpha) \
        and not words[-1].endswith((".", ",", ";")) and not _VERBS.search(" ".join(words))


def _number(token: str) -> int | None:
    digits = re.findall(r"\d+", token)
    return int(digits[-1]) if digits else roman_value(token.strip("-.,()"))


def _page_numbered(key: tuple[str, ...], occurrences: list[tuple[str, ...]]) -> bool:
    """Whether one of the phrase's numbers grows from each page to the next, as a page number does."""
    for i, t in enumerate(key):
        if "#" not in t:
            continue
        values = [_number(words[i]) for words in occurrences]
        steps = [b > a for a, b in zip(values, values[1:]) if a is not None and b is not None]
        if steps and sum(steps) >= 0.8 * len(steps):
            return True
    return False


def _phrase_regex(tokens: tuple[str, ...]) -> re.Pattern:
    parts = []
    for t in tokens:
        if t == "#":
            parts.append(rf"(?:\d+|{_ROMAN_NUM})")
        else:
            parts.append(r"\d+".join(re.escape(p) for p in t.split("#")))
    return re.compile(r"[ \t]+".join(parts), re.IGNORECASE)


def _repeated_lines(text: str, min_gap: int = 800) -> list[tuple[int, int]]:
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m in re.finditer(r"[^\n]+", text):
        s, e = _trim(text, m.start(), m.end())
        line = text[s:e]
        if not 6 <= len(line) <= 120 or not re.search(r"[A-Za-z]{3}", line):
            continue
        if _FIELD_LINE.search(line) or _NUMBERED_LINE.match(line) or _KEYWORD_START.match(line):
            continue
        if _SIGNATURE_WORDS.search(line) or re.search(r"\b(?:reserved|intentionally|deleted)\b", line, re.I):
            continue
        where[" ".join(_template(t) for t in line.split())].append((s, e))
    out = []
    for key, spans in where.items():
        if len(spans) < MIN_EDGES or any(b[0] - a[1] < min_gap for a, b in zip(spans, spans[1:])):
            continue
        # a legend or a "Confidential" header; otherwise a title repeated on many pages (not a
        # sentence: the same sentence closing several letters of one filing is text)
        if _FURNITURE_WORDS.search(key) or (len(spans) >= 5 and not key.endswith((".", ",", ";"))):
            out.extend(spans)
    return out


def find_furniture(text: str) -> list[tuple[int, int]]:
    found = [m.span() for m in _BANNER.finditer(text)]
    found += [m.span() for m in _PAGE_OF.finditer(text)]
    found += [_trim(text, *m.span()) for m in _INITIALS.finditer(text)]
    found += [_trim(text, *m.span()) for m in _PAGE_LINE.finditer(text) if m.group().strip()]
    found = _merge(found)

    lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]*", text) if m.end() > m.start()]
    breaks = found  # every page break found so far
    edges = _edge_lines(text, lines, breaks, found)
    found = _merge(found + _sequenced_page_numbers(text, edges, found))
    for _ in range(3):  # a footer may sit behind another ("... legend. FOOTER Page 16/110"): peel them in turn
        edges = _edge_lines(text, lines, breaks, found)
        edge_lines = {line for pair in edges for line in pair if line is not None}
        visible = mask(text, found)
        new = []
        for tokens, side in _edge_phrases(text, edges, found):
            rx = _phrase_regex(tokens)
            chars = sum(len(t) for t in tokens)
            for m in rx.finditer(text):
                ls, le = _line_bounds(text, m.start())
                at_edge = (ls, le) in edge_lines and (
                    not visible[m.end():le].strip() if side == "tail" else not visible[ls:m.start()].strip())
                if (at_edge or chars >= LONG_PHRASE) and not _covered(found, m.start(), m.end()):
                    new.append(m.span())
        if not new:
            break
        found = _merge(found + new)
    found += _repeated_lines(text)
    return [(s, e) for s, e in _merge(found) if e > s]


def mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` with every furniture character blanked (newlines kept), so offsets stay valid."""
    out = list(text)
    for s, e in spans:
        for i in range(s, e):
            if out[i] != "\n":
                out[i] = " "
    return "".join(out)
