"""`train` and `train --check` refuse a run that cannot work before any model is built, naming each problem."""

import json
import shutil
from pathlib import Path

import pytest

from contract_review.cli import main
from contract_review.training import checkpoint as ckpt
from contract_review.training.config import load_config
from contract_review.training.preflight import PreflightError, preflight

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CPU = str(CONFIGS / "smollm2-135m_lora_cpu.yaml")


def _check(capsys, *overrides) -> tuple[int, str]:
    status = main(["train", "--config", CPU, "--check", *overrides])
    return status, capsys.readouterr().err


def test_check_exits_2_naming_a_missing_data_dir_a_bad_model_path_and_a_misspelt_preset(tmp_path, capsys):
    status, err = _check(capsys, f"data.dir={tmp_path / 'nowhere'}", f"model.name={tmp_path / 'no-model'}")
    assert status == 2
    assert f"data.dir {tmp_path / 'nowhere'} does not exist" in err
    assert f"model.name {tmp_path / 'no-model'}: no such folder" in err
    status, err = _check(capsys, "model.config=llama2-7", "model.random_init=true", "model.name=defualt")
    assert status == 2
    assert "model.config 'llama2-7': not a preset" in err and "did you mean 'llama2-7b'?" in err
    assert "model.name 'defualt': not a local folder and not in the local Hugging Face cache" in err
    assert "did you mean 'default'?" in err


def test_a_preset_given_as_model_name_is_pointed_to_model_config(small_dataset, capsys):
    status, err = _check(capsys, f"data.dir={small_dataset}", "model.name=llama2-13b")
    assert status == 2
    assert "model.config=llama2-13b model.random_init=true" in err


def test_a_model_folder_without_weights_or_of_another_architecture(small_dataset, default_model, tmp_path, capsys):
    folder = tmp_path / "half"
    folder.mkdir()
    shutil.copy(default_model / "config.json", folder)
    shutil.copy(default_model / "tokenizer.json", folder)
    status, err = _check(capsys, f"data.dir={small_dataset}", f"model.name={folder}")
    assert status == 2 and "the folder has no weights (*.safetensors)" in err
    (folder / "model.safetensors").symlink_to(default_model / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    status, err = _check(capsys, f"data.dir={small_dataset}", f"model.name={folder}")
    assert status == 2 and "architecture 'gpt2' is not supported" in err
    # the tokenizer of a random-weight run needs no weights beside it
    status, _ = _check(capsys, f"data.dir={small_dataset}", f"model.name={default_model}",
                       "model.config=tiny-llama", "model.random_init=true")
    assert status == 0


def test_an_unknown_override_field_of_the_architecture_is_refused(small_dataset, capsys):
    status, err = _check(capsys, f"data.dir={small_dataset}", "model.config=tiny-llama", "model.random_init=true",
                         "model.overrides={hiden_size: 32}")
    assert status == 2 and "configs have no field 'hiden_size'" in err


def test_a_bad_record_is_named_by_file_and_line_and_the_eval_split_too(small_dataset, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    lines = (data / "train.jsonl").read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"text": "', b'"text": "\xff', 1)
    (data / "train.jsonl").write_bytes(b"\n".join(lines))
    (data / "validation.jsonl").unlink()
    status, err = _check(capsys, f"data.dir={data}")
    assert status == 2
    assert f"data.dir: {data}: no validation.jsonl or validation.jsonl.gz" in err
    assert "data.eval_split=null" in err
    status, err = _check(capsys, f"data.dir={data}", "data.eval_split=null")
    assert status == 2
    assert f"{data / 'train.jsonl'}: 1 invalid of 24 records" in err
    assert f"{data / 'train.jsonl'}:3:" in err and "not UTF-8 text (byte 0xff)" in err


def test_subset_sources_that_match_nothing(small_dataset, capsys):
    status, err = _check(capsys, f"data.dir={small_dataset}", "data.subset.sources=[user]")
    assert status == 2 and "data.subset.sources ['user']: no train record comes from them" in err


def test_resume_needs_a_checkpoint_and_a_new_run_never_mixes_with_an_old_one(small_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    over = [f"data.dir={small_dataset}", f"output.dir={run}"]
    status = main(["train", "--config", CPU, "--check", "--resume", *over])
    assert status == 2 and f"--resume: no checkpoint in {run / 'checkpoints'}" in capsys.readouterr().err
    ckpt.save(run / "checkpoints", 40, {"step": 40})
    status, err = _check(capsys, *over)
    assert status == 2 and "holds an earlier run's checkpoints (latest step-000040)" in err and "--overwrite" in err
    # the exact command that continues the run, ready to paste
    assert f"continue it with `contract-review train --config {CPU} {' '.join(over)} --resume`" in err
    assert main(["train", "--config", CPU, "--check", "--resume", *over]) == 0
    assert main(["train", "--config", CPU, "--check", "--overwrite", *over]) == 0


def test_an_output_folder_that_cannot_be_created(small_dataset, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file where a folder should go")
    cfg = load_config(CPU, [f"data.dir={small_dataset}", f"output.dir={a_file / 'run'}",
                            f"output.export={a_file / 'export'}"])
    with pytest.raises(PreflightError) as exc:
        preflight(cfg)
    assert f"output.dir {a_file / 'run'}: cannot be written" in str(exc.value)
    assert f"output.export {a_file / 'export'}: cannot be written" in str(exc.value)


def test_the_records_checked_are_the_ones_handed_to_the_recipe(small_dataset):
    checked = preflight(load_config(CPU, [f"data.dir={small_dataset}"]))
    assert [len(checked.records[s]) for s in ("train", "validation")] == [24, 8]


def test_an_adapted_base_folder_is_checked_through_the_base_it_names(small_dataset, tmp_path, capsys):
    """What `objective: clm` writes (a PEFT adapter and adapted.json naming its base) is a model.name the
    reviewer config takes; the check follows adapted.json to the base instead of asking for config.json."""
    folder = tmp_path / "adapted"
    folder.mkdir()
    (folder / "adapted.json").write_text(json.dumps({"base_model": "default"}))
    status, err = _check(capsys, f"data.dir={small_dataset}", f"model.name={folder}")
    assert status == 2 and "an adapted base without its adapter weights" in err
    (folder / "adapter_model.safetensors").write_bytes(b"")
    status, err = _check(capsys, f"data.dir={small_dataset}", f"model.name={folder}")
    assert status == 0, err
    (folder / "adapted.json").write_text(json.dumps({"base_model": str(tmp_path / "gone")}))
    status, err = _check(capsys, f"data.dir={small_dataset}", f"model.name={folder}")
    assert status == 2 and f"{tmp_path / 'gone'}: no such folder" in err
