"""`contract-review doctor --run`: a run's log read back into findings with advice."""

import json
import math

from contract_review.cli import main
from contract_review.training.diagnose import diagnose_run


def _write(tmp_path, events):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


def _steps(losses, mfu=None, tps=1000.0):
    return [{"event": "step", "step": i + 1, "loss": x, "lr": 1e-3, "tokens_per_s": tps, "mfu": mfu,
             "peak_mem_gib": 2.0} for i, x in enumerate(losses)]


def _names(findings, severity="problem"):
    return {f.name for f in findings if f.severity == severity}


def test_oscillating_loss_suggests_lower_lr_or_bigger_batch(tmp_path):
    losses = [2.0 + (0.9 if i % 2 else -0.9) for i in range(60)]
    findings = diagnose_run(_write(tmp_path, _steps(losses) + [{"event": "stop", "step": 60}]))
    osc = next(f for f in findings if f.name == "oscillating loss")
    assert osc.severity == "problem" and "optim.lr" in osc.advice and "batch" in osc.advice


def test_a_healthy_falling_loss_is_ok(tmp_path):
    losses = [3.0 * math.exp(-i / 30) + 0.5 for i in range(80)]
    findings = diagnose_run(_write(tmp_path, _steps(losses, mfu=0.4) + [{"event": "stop", "step": 80}]))
    assert not _names(findings)


def test_low_gpu_utilisation_is_reported(tmp_path):
    losses = [3.0 * math.exp(-i / 30) + 0.5 for i in range(40)]
    findings = diagnose_run(_write(tmp_path, _steps(losses, mfu=0.03) + [{"event": "stop", "step": 40}]))
    low = next(f for f in findings if f.name == "low GPU utilisation")
    assert "workers" in low.advice and "batch_size" in low.advice


def test_oom_in_the_log_advises_accumulation_and_zero_grad(tmp_path):
    run = _write(tmp_path, _steps([2.0] * 5) + [{"event": "error", "step": 6, "kind": "oom", "peak_mem_gib": 79.3}])
    oom = next(f for f in diagnose_run(run) if f.name == "out of memory")
    assert "79.3" in oom.detail and "grad_accum" in oom.advice and "zero_grad" in oom.advice


def test_nccl_errors_in_a_launcher_log_advise_the_nccl_variables(tmp_path):
    log = tmp_path / "launcher.log"
    log.write_text("rank1: NCCL WARN NET/IB : No device found.\nRuntimeError: NCCL error in: ... unhandled system error\n")
    nccl = next(f for f in diagnose_run(None, log) if f.name == "NCCL error")
    assert "NCCL_IB_DISABLE=1" in nccl.advice and "NCCL_DEBUG=INFO" in nccl.advice


def test_doctor_command_reads_a_run(tmp_path, capsys):
    run = _write(tmp_path, _steps([2.0] * 5) + [{"event": "error", "step": 6, "kind": "nan"}])
    assert main(["doctor", "--run", str(run)]) == 1
    assert "loss diverged" in capsys.readouterr().out
