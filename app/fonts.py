"""Fonts for the PDF report: every character of a contract shown, or the report says which are not.

    fonts = report_fonts()                 # found once per process
    fonts.missing(text)                    # {"Hangul": 1234} for characters no installed font shows
    fonts.notice(text)                     # the sentence to print and show when some are missing

Contracts are full of typographic quotes, accents and, for Chinese, Japanese or Korean
contracts, ideographs and syllables that PDF's built-in fonts cannot show. The report embeds
(as a subset: only the glyphs it uses) DejaVu Sans for Latin, Greek and Cyrillic (from
matplotlib's data, a dependency), and, when installed, Debian's Droid Sans Fallback for
Chinese and Japanese (fonts-droid-fallback, Apache-2.0) and Nanum Gothic for Korean
(fonts-nanum, SIL Open Font License 1.1); both licences allow embedding. `make serve` and
`make test` install them; on a machine without them the report is still written, and it and
the app say which characters could not be shown and how to install the font, never a silent
row of blanks. CONTRACT_REVIEW_FONT_DIRS (folders, separated by ":") adds places to look.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_SYSTEM_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")


@dataclass(frozen=True)
class FontFile:
    family: str  # the name the PDF uses
    regular: Path
    bold: Path | None
    scripts: str  # what it is for, in words
    package: str  # the Debian package that installs it


# family, file names (regular, bold), scripts, Debian package; in the order fonts are tried
_WANTED = (
    ("droid", ("DroidSansFallbackFull.ttf", None), "Chinese and Japanese", "fonts-droid-fallback"),
    ("nanum", ("NanumGothic.ttf", "NanumGothicBold.ttf"), "Korean", "fonts-nanum"),
)
# scripts that need a font beyond DejaVu, by code point range, with the package that covers them
_SCRIPT_RANGES = (
    ("Han", 0x3400, 0x9FFF, "fonts-droid-fallback"), ("Han", 0xF900, 0xFAFF, "fonts-droid-fallback"),
    ("Kana", 0x3040, 0x30FF, "fonts-droid-fallback"), ("CJK punctuation", 0x3000, 0x303F, "fonts-droid-fallback"),
    ("full-width forms", 0xFF00, 0xFFEF, "fonts-droid-fallback"), ("Hangul", 0xAC00, 0xD7AF, "fonts-nanum"),
    ("Hangul", 0x1100, 0x11FF, "fonts-nanum"), ("Hangul", 0x3130, 0x318F, "fonts-nanum"),
)


def _dirs() -> list[Path]:
    extra = [d for d in os.environ.get("CONTRACT_REVIEW_FONT_DIRS", "").split(":") if d]
    return [Path(d) for d in (*extra, *_SYSTEM_DIRS) if Path(d).is_dir()]


def _find(name: str) -> Path | None:
    for d in _dirs():
        hits = sorted(d.rglob(name))
        if hits:
            return hits[0]
    return None


def dejavu() -> tuple[Path, Path] | None:
    """DejaVu Sans regular and bold from matplotlib's data."""
    try:
        import matplotlib

        root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None
    regular, bold = root / "DejaVuSans.ttf", root / "DejaVuSans-Bold.ttf"
    return (regular, bold) if regular.exists() and bold.exists() else None


@functools.lru_cache(maxsize=32)
def _cmap(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as font:
        return frozenset(font.getBestCmap())


def _script(cp: int) -> tuple[str, str]:
    for name, first, last, package in _SCRIPT_RANGES:
        if first <= cp <= last:
            return name, package
    return "other", ""


@dataclass(frozen=True)
class ReportFonts:
    base: tuple[Path, Path] | None  # DejaVu regular, bold
    extra: tuple[FontFile, ...] = field(default_factory=tuple)
    absent: tuple[tuple[str, str, str], ...] = ()  # (family, scripts, package) not installed

    def covered(self, cp: int) -> bool:
        if cp < 0x20 or cp in (0x7F,) or chr(cp).isspace():
            return True
        fonts = ([self.base[0]] if self.base else []) + [f.regular for f in self.extra]
        if not self.base and cp < 0x100:
            return True  # the built-in Helvetica has Latin-1
        return any(cp in _cmap(p) for p in fonts)

    def needed(self, text: str) -> list[FontFile]:
        """The extra fonts `text` needs: those with a character DejaVu lacks (parsing a CJK font takes
        a second or two, so a report of an English contract does without)."""
        base = _cmap(self.base[0]) if self.base else frozenset(range(0x100))
        rest = {ord(c) for c in set(text)} - base
        out = []
        for f in self.extra:
            has = rest & _cmap(f.regular)
            if has:
                out.append(f)
                rest -= has
        return out

    def missing(self, text: str) -> dict[str, int]:
        """Characters of `text` no font here can show, counted by script."""
        out: dict[str, int] = {}
        for ch, n in Counter(text).items():
            if not self.covered(ord(ch)):
                script = _script(ord(ch))[0]
                out[script] = out.get(script, 0) + n
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def notice(self, text: str) -> str | None:
        """What the report and the app say when characters cannot be shown, or None."""
        missing = self.missing(text)
        if not missing:
            return None
        packages = sorted({_script(ord(ch))[1] for ch in set(text) if not self.covered(ord(ch))} - {""})
        how = (f"install Debian's {' and '.join(packages)} on the server (`make fonts`)" if packages
               else "add a font that has them to CONTRACT_REVIEW_FONT_DIRS")
        counts = ", ".join(f"{n:,} {script}" for script, n in missing.items())
        return (f"This PDF cannot show {sum(missing.values()):,} characters of the contract ({counts}): no font "
                f"for them is installed on this server; they print as blanks. To show them, {how}; the Word "
                "report shows them with the reader's own fonts.")


@functools.lru_cache(maxsize=1)
def report_fonts() -> ReportFonts:
    extra, absent = [], []
    for family, (regular, bold), scripts, package in _WANTED:
        path = _find(regular)
        if path is None:
            absent.append((family, scripts, package))
            continue
        extra.append(FontFile(family, path, _find(bold) if bold else None, scripts, package))
    return ReportFonts(dejavu(), tuple(extra), tuple(absent))
