from pathlib import Path

import pytest

from contract_review.training.config import ConfigError, load_config

CONFIGS = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))


def test_shipped_configs_cover_the_models_methods_and_hardware():
    names = {p.stem for p in CONFIGS}
    for name in ("smollm2-135m_reviewer_cpu", "smollm2-135m_lora_cpu", "llama2-7b_lora_1gpu", "llama2-7b_qlora_1gpu",
                 "llama2-13b_lora_1gpu", "llama2-13b_qlora_1gpu", "mistral-7b_lora_1gpu", "mistral-7b_qlora_1gpu",
                 "llama2-13b_lora_zero3"):
        assert name in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.output.name == path.stem
    if "zero3" in path.stem:
        assert cfg.distributed.strategy == "deepspeed" and cfg.distributed.param_persistence_threshold >= 1_000_000
    if "qlora" in path.stem:
        assert cfg.lora.quantize == "4bit"


def test_legal_defaults():
    cfg = load_config(None)
    assert (cfg.lora.r, cfg.lora.alpha) == (32, 64)
    assert cfg.lora.modules() == ["q_proj", "o_proj"]
    assert load_config(None, ["lora.target_modules=all-linear"]).lora.modules()[-1] == "down_proj"


def test_overrides_are_dotted_yaml_values():
    cfg = load_config(CONFIGS[0], ["optim.lr=1e-4", "lora.target_modules=q_proj,v_proj", "model.random_init=true",
                                   "model.config=tiny-llama"])
    assert cfg.optim.lr == 1e-4 and cfg.lora.modules() == ["q_proj", "v_proj"] and cfg.model.random_init


def test_unknown_key_names_the_field_and_the_known_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.001\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert "optim.learning_rate" in msg and "unknown key" in msg and "lr" in msg


def test_bad_value_names_the_field_the_value_and_the_fix():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["lora.r=0"])
    assert "lora.r" in str(err.value) and "greater than or equal to 1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["backend=torch"])
    assert "backend" in str(err.value) and "'native', 'hf', 'unsloth' or 'liger'" in str(err.value)


def test_random_init_without_an_architecture_is_refused():
    with pytest.raises(ConfigError, match="random_init needs model.config"):
        load_config(None, ["model.random_init=true"])


def test_override_without_equals_sign_says_how():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])


def test_missing_config_file_points_at_configs(tmp_path):
    with pytest.raises(ConfigError, match="configs/"):
        load_config(tmp_path / "nope.yaml")


def test_kernels_defaults_are_auto_and_patch_takes_every_other_option():
    import inspect

    from contract_review.kernels.patching.monkey_patch import patch

    k = load_config(None).kernels
    assert (k.cuda_graph, k.offload_activations, k.offload_mlp, k.trim_recompute, k.fuse_qkv) == (
        "auto", "auto", "auto", True, True)
    assert k.changed() == [] and k.asked() == []
    params = inspect.signature(patch).parameters
    for name in ("trim_recompute", "fuse_qkv"):  # patch's own options, with patch's default
        assert getattr(k, name) == params[name].default, name
    # the shipped one-GPU configs leave every option to auto (decided at start, for the machine)
    for stem in ("llama2-7b_lora_1gpu", "llama2-7b_lora-all_1gpu", "llama2-13b_lora_1gpu", "mistral-7b_lora_1gpu"):
        assert load_config(next(p for p in CONFIGS if p.stem == stem)).kernels == k, stem
    native = load_config(None, ["backend=native", "model.gradient_checkpointing=true", "kernels.offload_mlp=0.5",
                                "kernels.offload_activations=true", "kernels.trim_recompute=false",
                                "kernels.cuda_graph=false"]).kernels
    assert (native.offload_activations, native.offload_mlp, native.trim_recompute, native.cuda_graph) == (
        True, 0.5, False, False)


def test_combinations_a_backend_cannot_run_are_refused_when_read():
    with pytest.raises(ConfigError, match="backend unsloth trains objective sft only"):
        load_config(None, ["backend=unsloth", "objective=classify"])
    with pytest.raises(ConfigError, match="backend liger does not run under DeepSpeed ZeRO-3"):
        load_config(None, ["backend=liger", "distributed.strategy=deepspeed"])


@pytest.mark.parametrize("backend", ["hf", "unsloth", "liger"])
def test_kernels_options_under_another_backend_are_refused(backend):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"backend={backend}", "model.gradient_checkpointing=true", "kernels.trim_recompute=false"])
    msg = str(err.value)
    assert "kernels.trim_recompute" in msg and "backend native only" in msg and "set backend: native" in msg
    # off, 0 and the defaults ask for nothing: accepted; kernels=null clears the section
    assert load_config(None, [f"backend={backend}", "kernels.offload_mlp=0", "kernels.trim_recompute=true",
                              "kernels.cuda_graph=false"])
    assert load_config(None, [f"backend={backend}", "kernels=null"]).kernels.asked() == []
    with pytest.raises(ConfigError, match="kernels.cuda_graph"):
        load_config(None, [f"backend={backend}", "kernels.cuda_graph=true"])


@pytest.mark.parametrize("option", ["kernels.offload_activations=true", "kernels.offload_mlp=0.5"])
def test_offload_without_gradient_checkpointing_is_refused(option):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["backend=native", option])
    msg = str(err.value)
    assert option.split("=")[0] in msg and "model.gradient_checkpointing: true" in msg
    # trim_recompute alone has nothing to offload: allowed (it does nothing without checkpointing)
    assert not load_config(None, ["backend=native", "kernels.trim_recompute=false"]).kernels.trim_recompute


@pytest.mark.parametrize("value, expect", [("1.5", "got 1.5"), ("-0.1", "got -0.1"), ("true", "not a switch"),
                                           ("half", "auto")])
def test_offload_mlp_outside_zero_to_one_is_refused(value, expect):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["backend=native", "model.gradient_checkpointing=true", f"kernels.offload_mlp={value}"])
    msg = str(err.value)
    assert "kernels.offload_mlp" in msg and expect in msg and "fraction of decoder layers" in msg


def test_whole_config_errors_read_as_a_config_error():
    # Config._consistent's errors have no field path: they used to crash the message builder
    with pytest.raises(ConfigError, match="does not combine with ZeRO-3"):
        load_config(None, ["lora.quantize=4bit", "distributed.strategy=deepspeed"])
