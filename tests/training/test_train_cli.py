"""`contract-review train` and `doctor` from the command line."""

from pathlib import Path

from contract_review.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_bad_config_fails_with_the_field_and_exit_status_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  r: -4\n  alpha: 64\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "lora.r" in err and "greater than or equal to 1" in err


def test_check_prints_the_validated_config_and_what_it_checked(small_dataset, capsys):
    assert main(["train", "--config", str(CONFIGS / "llama2-7b_qlora_1gpu.yaml"), "--check", "optim.lr=1e-4",
                 f"data.dir={small_dataset}"]) == 0
    out = capsys.readouterr().out
    assert "quantize: 4bit" in out and "lr: 0.0001" in out
    assert f"# ok: data: {small_dataset / 'train.jsonl'}: 24 records" in out
    assert "# ok: model: random weights of llama2-7b" in out


def test_qlora_on_cpu_says_it_needs_a_gpu(small_dataset, tmp_path, tiny_overrides, capsys):
    args = ["train", "--config", str(CONFIGS / "llama2-7b_qlora_1gpu.yaml"),
            *tiny_overrides(small_dataset, tmp_path / "q", **{"data.subset.limit": 2})]
    assert main(args) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_doctor_profile_writes_a_trace(small_dataset, tmp_path, tiny_overrides):
    over = tiny_overrides(small_dataset, tmp_path / "p", **{"data.subset.limit": 4, "optim.batch_size": 1,
                                                           "optim.grad_accum": 1, "train.max_steps": 20})
    assert main(["doctor", "--profile", str(CONFIGS / "smollm2-135m_lora_cpu.yaml"), "--steps", "2", *over]) == 0
    traces = list((tmp_path / "p" / "profile").glob("*.pt.trace.json*"))
    assert traces, list((tmp_path / "p").rglob("*"))
    table = (tmp_path / "p" / "profile" / "summary_rank0.txt").read_text()
    assert "2 profiled step(s)" in table and "aten::mm" in table  # the LoRA matmuls are in the ranked table
