"""Where the shipped served model lives: the reviewer adapter folder, and beside it the mix's file.

A module of constants only, so the model registry (`registry.py`) can describe a choice without
importing torch.
"""

from __future__ import annotations

from contract_review.paths import DATA_DIR

DEFAULT_ADAPTER_DIR = DATA_DIR / "model" / "reviewer"
ENSEMBLE_FILE = "ensemble.json"  # the mix tuned for the adapter in the same folder (`ensemble.py`)
