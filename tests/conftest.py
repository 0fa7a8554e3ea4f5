"""Shared fixtures (the shipped dataset and corpora, loaded once per session) and the test tiers.

Tiers are folders: a test is marked by where it lives, never by hand in its file.
    tests/<package>/slow/        slow     over ~5 s on 2 CPU cores (real models, whole builds, multi-process runs)
    tests/<package>/gpu/         gpu      needs a CUDA device (skipped elsewhere)
    tests/<package>/label_studio/ server  talks to a real Label Studio server (started by a fixture)
    tests/<package>/browser/     browser  drives the app in headless Chromium
`make test` runs every tier; `make test-fast` deselects all four (the edit-test loop, under 3 minutes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from contract_review.paths import DATASET_DIR
from contract_review.records import SPLITS, find_split_file, read_records, write_records

# keep tests offline and quiet, whatever the developer's environment says
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


# Triton reads TRITON_INTERPRET when it is first imported: set it before any test module
# (kernels, training, app) can import it, so CPU runs use the interpreter everywhere.
if not _has_cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")


TIER_FOLDERS = {"slow": "slow", "gpu": "gpu", "label_studio": "server", "browser": "browser"}


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(tests_dir).parts[:-1]
        for folder in parts:
            if folder in TIER_FOLDERS:
                item.add_marker(TIER_FOLDERS[folder])
        if "ls_server" in getattr(item, "fixturenames", ()):
            item.add_marker("server")


@pytest.fixture(scope="session")
def dataset() -> dict[str, list]:
    return {split: read_records(find_split_file(DATASET_DIR, split)) for split in SPLITS}


@pytest.fixture(scope="session")
def all_records(dataset) -> list:
    return [r for split in SPLITS for r in dataset[split]]


@pytest.fixture(scope="session")
def cuad_dir() -> Path:
    from contract_review.annotation.corpora import shipped_corpus

    return shipped_corpus("cuad")


@pytest.fixture(scope="session")
def claudette_dir() -> Path:
    from contract_review.annotation.corpora import shipped_corpus

    return shipped_corpus("unfair-tos")


# -- training runs (tests/training, tests/bench): a small dataset folder and overrides for a tiny Llama ------

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


# -- evaluation and the served model (tests/eval, tests/reviewer, tests/app) --------------------

@pytest.fixture(scope="session")
def small_records(dataset) -> list:
    """30 real test records from several documents, some risk clauses and verified records among them."""
    test = dataset["test"]
    risky = [r for r in test if r.is_risk and not r.verified][:8]
    verified = [r for r in test if r.verified][:6]
    rest = [r for r in test if not r.is_risk and not r.verified][:16]
    return risky + verified + rest


@pytest.fixture()
def data_file(tmp_path, small_records):
    path = tmp_path / "slice.jsonl"
    path.write_text("".join(json.dumps(r.model_dump(exclude_none=True)) + "\n" for r in small_records))
    return path


@pytest.fixture(scope="session")
def tiny_train(tmp_path_factory, dataset):
    """A small real train file, so the TF-IDF baseline fits in a second."""
    train = dataset["train"]
    pick = [r for r in train if r.is_risk][:150] + [r for r in train if not r.is_risk][:250]
    path = tmp_path_factory.mktemp("train") / "train.jsonl"
    path.write_text("".join(json.dumps(r.model_dump(exclude_none=True)) + "\n" for r in pick))
    return path


@pytest.fixture()
def tfidf_cache(tmp_path, monkeypatch) -> Path:
    """TF-IDF fits go to a fresh cache folder, never the developer's."""
    import contract_review.reviewer.tfidf as tfidf

    monkeypatch.setattr(tfidf, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The converted default model (SmolLM2-135M-Instruct); the test is skipped where it is not converted."""
    from contract_review.training.models import default_model_dir

    folder = default_model_dir()
    if not (folder / "model.safetensors").exists():
        pytest.skip("the default model is not converted on this machine (`make model` converts it)")
    return folder
