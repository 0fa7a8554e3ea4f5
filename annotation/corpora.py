"""The corpora shipped with the project (`data/corpora/*.tar.xz`), unpacked on demand.

The archives hold the folders exactly as published (CUAD v1, CLAUDETTE/unfair-tos), so the
builder reads the shipped copy and any other copy the same way. They are unpacked once
into the cache, under a name that includes the archive's hash, so an updated archive is
never shadowed by a stale copy.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from pathlib import Path

from contract_review.paths import CORPORA_DIR, cache_dir


def shipped_corpus(name: str) -> Path:
    archive = CORPORA_DIR / f"{name}.tar.xz"
    if not archive.exists():
        raise FileNotFoundError(f"{archive}: shipped corpus missing; restore it with `git checkout -- {archive}`")
    digest = hashlib.sha1(archive.read_bytes()).hexdigest()[:12]
    target = cache_dir() / "corpora" / f"{name}-{digest}"
    if not (target / name).is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target / name
