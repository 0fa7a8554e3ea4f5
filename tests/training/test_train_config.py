from pathlib import Path

import pytest

from training.config import ConfigError, load_config

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
    assert "backend" in str(err.value) and "'native', 'hf' or 'unsloth'" in str(err.value)


def test_random_init_without_an_architecture_is_refused():
    with pytest.raises(ConfigError, match="random_init needs model.config"):
        load_config(None, ["model.random_init=true"])


def test_override_without_equals_sign_says_how():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])


def test_missing_config_file_points_at_configs(tmp_path):
    with pytest.raises(ConfigError, match="configs/"):
        load_config(tmp_path / "nope.yaml")
