"""Fixtures for the training tests: a small dataset folder and configs for a tiny Llama."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contract_review.paths import DATASET_DIR
from contract_review.records import find_split_file, read_records, write_records

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """train: 24 short records (typed CUAD and CLAUDETTE ones first); validation: 8 others."""
    records = read_records(find_split_file(DATASET_DIR, "validation"))
    short = sorted((r for r in records if len(r.text) < 200), key=lambda r: (r.clause_types == ["other"], r.id))
    train = [r.model_copy(update={"split": "train"}) for r in short[:24]]
    out = tmp_path_factory.mktemp("dataset")
    write_records(out / "train.jsonl", train)
    write_records(out / "validation.jsonl", short[24:32])
    return out


@pytest.fixture
def tiny_overrides():
    return _tiny_overrides


def _tiny_overrides(data_dir: Path, run_dir: Path, **extra) -> list[str]:
    """key=value overrides that turn any config into a seconds-long CPU run of a tiny random Llama."""
    base = {
        "model.name": "default", "model.config": "tiny-llama", "model.random_init": "true",
        "model.dtype": "float32",
        # a wider init than 0.02, so frozen random embeddings leave the LoRA layers room to fit
        "model.overrides": "{initializer_range: 0.5}", "data.dir": str(data_dir), "data.max_length": "320",
        "data.eval_limit": "8", "train.precision": "fp32", "train.progress": "false",
        "train.eval_every": "1000", "train.save_every": "1000", "optim.warmup_steps": "0",
        "optim.scheduler": "constant", "output.dir": str(run_dir), "lora.dropout": "0.0",
    }
    base.update({k: str(v) for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items()]
