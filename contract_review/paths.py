"""Where the project's files live.

The project is installed editable (`pip install -e .`), so the repository root is the
parent of this package; everything shipped (taxonomy, corpora, dataset, adapter) is under
`data/`. Caches (converted models) go under CONTRACT_REVIEW_CACHE or ~/.cache.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
TAXONOMY_FILE = DATA_DIR / "taxonomy.yaml"
CORPORA_DIR = DATA_DIR / "corpora"
DATASET_DIR = DATA_DIR / "dataset"
VERIFIED_PARTY_FILE = DATA_DIR / "party_verified.jsonl"
RISK_GRADED_FILE = DATA_DIR / "risk_graded.jsonl"  # the graded set's adjudicated risk labels (annotate pull --graded)


def cache_dir() -> Path:
    root = Path(os.environ.get("CONTRACT_REVIEW_CACHE", Path.home() / ".cache" / "contract-review"))
    root.mkdir(parents=True, exist_ok=True)
    return root
