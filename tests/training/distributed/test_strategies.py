"""The distribution strategies' checks at setup, on CPU, before any model is built."""

import sys
import typing
from pathlib import Path

import pytest

from contract_review.training.cli import run_training
from contract_review.training.config import DistributedConfig, load_config
from contract_review.training.distributed.registry import STRATEGIES
from contract_review.training.errors import TrainingError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_every_strategy_the_config_accepts_has_its_file():
    # auto is not a strategy of its own: it resolves to one of the others (distributed/auto.py)
    assert set(typing.get_args(DistributedConfig.model_fields["strategy"].annotation)) == set(STRATEGIES) | {"auto"}


def test_several_processes_without_a_strategy_are_refused(small_dataset, tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = load_config(CONFIGS / "smollm2-135m_lora_cpu.yaml", tiny_overrides(small_dataset, tmp_path / "w"))
    with pytest.raises(TrainingError, match="started with 2 processes but distributed.strategy is none"):
        run_training(cfg, quiet=True)


def test_deepspeed_where_it_is_not_installed_names_the_extra(small_dataset, tmp_path, tiny_overrides, monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)
    cfg = load_config(CONFIGS / "llama2-13b_lora_zero3.yaml", tiny_overrides(small_dataset, tmp_path / "d"))
    with pytest.raises(TrainingError, match=r"needs DeepSpeed: pip install 'contract-review\[deepspeed\]'"):
        run_training(cfg, quiet=True)
