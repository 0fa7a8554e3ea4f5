"""The local, append-only journal of annotations pulled from Label Studio.

Every annotation version a pull sees is appended here (one JSON line; a version is an
annotation id plus its `updated_at`) before anything else happens with it, and flushed to
disk page by page. So a pull that dies half-way loses nothing: the next pull skips what is
already journaled, and the dataset is always rebuilt from the whole journal, which makes a
repeated pull give the same dataset. Nothing is ever rewritten or deleted here; a line cut
short by a crash (the last one) is ignored on reading and the next append starts afresh.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path


def entry_key(entry: dict) -> tuple:
    return (entry.get("server"), entry.get("project_id"), entry.get("annotation_id"), entry.get("updated_at"))


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if lineno == len(lines):  # a write cut short by a crash: the next pull fetches it again
                    print(f"warning: {self.path}:{lineno}: incomplete last line ignored", file=sys.stderr)
                    continue
                raise ValueError(f"{self.path}:{lineno}: not valid JSON; the journal is append-only, "
                                 "restore it from a backup instead of editing it") from None
        return out

    def keys(self) -> set[tuple]:
        return {entry_key(e) for e in self.read()}

    def append(self, entries: Iterable[dict], known: set[tuple] | None = None) -> int:
        """Append the entries not journaled yet; returns how many were new. `known` (updated in
        place) saves re-reading the file once per page."""
        known = self.keys() if known is None else known
        new = []
        for e in entries:
            k = entry_key(e)
            if k not in known:
                known.add(k)
                new.append(e)
        if not new:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell():
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # the last write was cut short: start on a new line
                    fh.write(b"\n")
            fh.write("".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in new).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return len(new)
