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
from contract_review.records import SPLITS, find_split_file, read_records

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
