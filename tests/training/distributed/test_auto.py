"""`distributed.strategy: auto`: a replicated base when it fits each device, ZeRO-3 (then with parameter
offload) when it does not; the choice is said once and recorded in the run's start event."""

from pathlib import Path

import pytest

from contract_review.training.config import ConfigError, load_config
from contract_review.training.distributed import auto
from contract_review.training.distributed.registry import make_strategy
from contract_review.training.distributed.single import SingleDevice
from contract_review.training.distributed.zero import DeepSpeedZeRO
from contract_review.training.errors import TrainingError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
# the benchmark shape: 7B, r=16 all-linear, micro-batch 4 of 2,048 tokens, checkpointing, bf16
SEVEN_B = ["model.config=llama2-7b", "model.random_init=true", "model.dtype=bfloat16", "lora.r=16",
           "lora.target_modules=all-linear", "optim.batch_size=4", "data.max_length=2048", "backend=native",
           "model.gradient_checkpointing=true", "distributed.strategy=auto"]


def _cfg(*over):
    return load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", [*SEVEN_B, *over])


def test_the_7b_base_counts_its_published_parameters():
    mc = auto._model_config(_cfg())
    assert 6.6e9 < auto.base_params(mc) < 6.9e9  # Llama-2-7B: 6.74e9
    # r=16 on the seven linears of 32 layers: 16 x (3x4096x2... ) = 40.0M
    assert auto.lora_params(_cfg(), mc) == 32 * 16 * (4 * (4096 + 4096) + 3 * (4096 + 11008))


def test_a_base_that_fits_each_gpu_is_replicated_with_ddp():
    choice = auto.choose(_cfg(), memory=141 * auto.GIB, world=2)
    assert choice.strategy == "ddp" and not choice.offload_params
    assert "fits each device" in choice.reason and choice.ddp_need_gib < 0.9 * 141


def test_one_process_whose_base_fits_runs_alone_instead_of_ddp():
    assert auto.choose(_cfg(), memory=141 * auto.GIB, world=1).strategy == "none"


def test_a_base_too_large_for_one_gpu_but_not_for_its_shard_takes_zero3():
    choice = auto.choose(_cfg(), memory=16 * auto.GIB, world=2)
    assert choice.strategy == "deepspeed" and not choice.offload_params
    assert choice.zero3_need_gib <= 0.9 * 16 < choice.ddp_need_gib


def test_a_shard_that_does_not_fit_either_is_offloaded():
    choice = auto.choose(_cfg(), memory=8 * auto.GIB, world=2)
    assert choice.strategy == "deepspeed" and choice.offload_params and "offloaded" in choice.reason


def test_auto_builds_the_chosen_strategy_and_records_why(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    strategy = make_strategy(_cfg("distributed.memory_gib=16"))
    assert isinstance(strategy, DeepSpeedZeRO) and strategy.cfg.distributed.strategy == "deepspeed"
    assert strategy.cfg.distributed.zero_stage == 3 and strategy.cfg.distributed.gather == "layer"
    assert strategy.notes()["strategy_choice"]["strategy"] == "deepspeed"
    assert "distributed.strategy auto: ZeRO-3" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "1")
    alone = make_strategy(_cfg("distributed.memory_gib=141"))
    assert type(alone) is SingleDevice and alone.notes()["strategy_choice"]["strategy"] == "none"


def test_a_forced_strategy_is_never_second_guessed():
    cfg = load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", [*SEVEN_B[:-1], "distributed.strategy=deepspeed"])
    strategy = make_strategy(cfg)
    assert isinstance(strategy, DeepSpeedZeRO) and strategy.choice is None


def test_memory_gib_without_auto_and_gather_without_zero3_are_refused():
    with pytest.raises(ConfigError, match="memory_gib is what strategy auto plans with"):
        load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", ["distributed.memory_gib=40"])
    with pytest.raises(ConfigError, match="gather chooses how ZeRO-3 gathers"):
        load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", ["distributed.strategy=ddp", "distributed.gather=layer"])


def test_zero3_refuses_the_options_it_cannot_honour_at_load():
    with pytest.raises(ConfigError, match="kernels.offload_activations"):
        load_config(CONFIGS / "llama2-7b_lora_1gpu.yaml", [
            "backend=native", "model.gradient_checkpointing=true", "kernels.offload_activations=true",
            "distributed.strategy=deepspeed", "distributed.zero_stage=3"])


def test_auto_choosing_zero3_for_a_config_zero3_refuses_says_so(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = _cfg("distributed.memory_gib=16", "kernels.offload_activations=true")
    with pytest.raises(TrainingError, match="auto chose ZeRO-3 .* cannot honour kernels.offload_activations"):
        make_strategy(cfg)
