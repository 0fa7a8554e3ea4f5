"""The training tests' settings; their fixtures (a small dataset folder, overrides for a tiny Llama) are in
tests/conftest.py, shared with the benchmarks' tests."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
