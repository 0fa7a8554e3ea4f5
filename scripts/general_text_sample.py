"""Writes data/corpora/general/python-docs-sample.txt.gz: the prose paragraphs of the Python 3.11
documentation's Tutorial, FAQ and HOWTO sources (Debian's python3.11-doc, PSF License), the general-English
held-out text of domain-adaptive pretraining (data/corpora/general/README.md).

    apt-get install python3.11-doc && python scripts/general_text_sample.py
"""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
OUT = Path(__file__).resolve().parents[1] / "data" / "corpora" / "general" / "python-docs-sample.txt.gz"
LIMIT = 260_000  # characters: ~55k SmolLM2 tokens, more than clm.eval_tokens scores


def prose(text: str) -> list[str]:
    """Paragraphs of running text: no code, directive, list, table or heading; reST roles reduced to their text."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.split("\n")
        if any(line.startswith((" ", "\t", "..", ">>>", "*", "-", "=", "+", "|")) for line in lines):
            continue
        p = " ".join(line.strip() for line in lines)
        if len(p) < 120 or p.count(" ") < 20:
            continue
        p = re.sub(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", p)
        p = re.sub(r"`([^`<]*?)(?:\s*<[^>]*>)?`_*", r"\1", p)
        p = re.sub(r"\s+", " ", p.replace("``", "").replace("**", "").replace("*", "")).strip()
        if sum(c.isalpha() for c in p) / len(p) >= 0.7:
            out.append(p)
    return out


def main() -> int:
    if not SOURCES.exists():
        print(f"{SOURCES}: not found; apt-get install python3.11-doc", file=sys.stderr)
        return 1
    files = [f for part in ("tutorial", "faq", "howto") for f in sorted(SOURCES.glob(f"{part}/*.rst.txt"))]
    text = "\n\n".join(p for f in files for p in prose(f.read_text(encoding="utf-8")))[:LIMIT]
    text = text[: text.rfind("\n\n")] + "\n"
    with open(OUT, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    print(f"wrote {OUT} ({len(text):,} characters from {len(files)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
