"""`contract-review train` as a real process under SIGTERM and SIGINT: the step finishes, a checkpoint is
written, the run says how to resume, and the resumed run continues the loss curve of one never stopped.
Also under torchrun with two gloo processes, where the ranks must agree on the step they stop after."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from contract_review.training.checkpoint import latest
from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.logging import read_log

ROOT = Path(__file__).resolve().parents[4]
CONFIG = str(ROOT / "configs" / "smollm2-135m_lora_cpu.yaml")
# PYTHONFAULTHANDLER: a process that hangs is sent SIGABRT and prints where each of its threads stood
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TRITON_INTERPRET": "0", "HF_HUB_OFFLINE": "1",
       "PYTHONFAULTHANDLER": "1"}


def _start(argv: list[str], log: Path, threads: int = 2) -> subprocess.Popen:
    """A command in its own session (a signal sent to it reaches nothing else), output to ``log``."""
    env = {**ENV, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _train(over: list[str], log: Path, resume: bool = False) -> subprocess.Popen:
    return _start([sys.executable, "-m", "contract_review.cli", "train", "--config", CONFIG, *over,
                   *(["--resume"] if resume else [])], log)


def _torchrun(over: list[str], log: Path, resume: bool = False) -> subprocess.Popen:
    return _start([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "-m", "contract_review.cli", "train", "--config", CONFIG, *over, *(["--resume"] if resume else [])],
                  log, threads=1)


def _steps(run: Path) -> list[dict]:
    return [e for e in read_log(run) if e["event"] == "step"] if (run / "metrics.jsonl").exists() else []


def _wait_for_step(proc: subprocess.Popen, run: Path, step: int, log: Path, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(e["step"] >= step for e in _steps(run)):
            return
        assert proc.poll() is None, f"exited with {proc.returncode} before step {step}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no step {step} within {timeout} s:\n{log.read_text()[-3000:]}")


def _wait(proc: subprocess.Popen, log: Path, timeout: float = 240) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.send_signal(signal.SIGABRT)
        time.sleep(5)
        proc.kill()
        pytest.fail(f"still running {timeout} s after the signal:\n{log.read_text()[-8000:]}")


def _stop_event(run: Path) -> dict:
    return next(e for e in reversed(read_log(run)) if e["event"] == "stop")


def test_sigterm_saves_the_step_it_finishes_and_resume_continues_the_same_curve(small_dataset, tmp_path,
                                                                                 tiny_overrides):
    extra = {"train.max_steps": 10, "optim.lr": 2e-3, "optim.batch_size": 2, "optim.grad_accum": 2,
             "lora.dropout": 0.1, "optim.scheduler": "cosine", "optim.warmup_steps": 2, "data.subset.limit": 12}
    straight = tmp_path / "straight"
    run_training(load_config(CONFIG, tiny_overrides(small_dataset, straight, **extra)), quiet=True)

    run = tmp_path / "stopped"
    over = tiny_overrides(small_dataset, run, **extra)
    log = tmp_path / "train.log"
    proc = _train(over, log)
    _wait_for_step(proc, run, 3, log)
    proc.send_signal(signal.SIGTERM)
    assert _wait(proc, log) == 143
    out = log.read_text()
    stop = _stop_event(run)
    k = stop["step"]
    assert 3 <= k < 10, out
    assert stop["reason"] == "signal" and stop["signal"] == "SIGTERM"
    assert latest(run / "checkpoints").name == f"step-{k:06d}" == Path(stop["checkpoint"]).name
    assert f"stopped by SIGTERM after step {k} of 10; checkpoint: {run / 'checkpoints' / f'step-{k:06d}'}" in out
    assert "resume: contract-review train --config" in out and out.rstrip().endswith("--resume")

    log2 = tmp_path / "resume.log"
    assert _wait(_train(over, log2, resume=True), log2) == 0, log2.read_text()[-3000:]
    a, b = [e["loss"] for e in _steps(straight)], [e["loss"] for e in _steps(run)]
    assert len(a) == len(b) == 10
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    assert (run / "adapter" / "adapter_model.safetensors").exists()


def test_sigint_twice_stops_at_once_without_finishing_the_step(small_dataset, tmp_path, tiny_overrides):
    # steps of many micro-batches: several seconds each, so the second signal lands inside one
    run = tmp_path / "run"
    over = tiny_overrides(small_dataset, run, **{"train.max_steps": 50, "optim.batch_size": 2,
                                                 "optim.grad_accum": 24, "data.subset.limit": 24})
    log = tmp_path / "train.log"
    proc = _train(over, log)
    _wait_for_step(proc, run, 1, log)
    proc.send_signal(signal.SIGINT)
    time.sleep(2.5)  # past the window in which a repeat counts as the same request
    logged = len(_steps(run))
    proc.send_signal(signal.SIGINT)
    assert _wait(proc, log, timeout=60) == 130
    out = log.read_text()
    assert "SIGINT: finishing this step, then writing a checkpoint" in out
    assert "stopped at once by SIGINT at step" in out and "before any checkpoint: start the run again" in out
    assert len(_steps(run)) == logged, "the step under way when the second signal came was finished"
    assert latest(run / "checkpoints") is None
    stop = _stop_event(run)
    assert stop["reason"] == "signal" and stop["at_once"] is True and stop["signal"] == "SIGINT"


def _rank_process(launcher: subprocess.Popen, rank: int) -> psutil.Process:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank):
                return child
        except psutil.Error:
            continue
    raise AssertionError(f"no process of rank {rank} under torchrun")


def test_ranks_under_torchrun_agree_on_the_step_to_stop_after(small_dataset, tmp_path, tiny_overrides):
    extra = {"distributed.strategy": "ddp", "distributed.backend": "gloo", "train.max_steps": 9,
             "optim.batch_size": 1, "optim.grad_accum": 2, "optim.lr": 1e-2, "data.subset.limit": 8}
    straight = tmp_path / "straight"
    log = tmp_path / "straight.log"
    assert _wait(_torchrun(tiny_overrides(small_dataset, straight, **extra), log), log) == 0, log.read_text()[-3000:]

    run = tmp_path / "stopped"
    over = tiny_overrides(small_dataset, run, **extra)
    # 1. SIGTERM to rank 1 alone: rank 0 never had it, yet both stop after the same step
    log1 = tmp_path / "one_rank.log"
    proc = _torchrun(over, log1)
    _wait_for_step(proc, run, 2, log1)
    os.kill(_rank_process(proc, 1).pid, signal.SIGTERM)
    assert _wait(proc, log1) != 0
    stop = _stop_event(run)
    k = stop["step"]
    assert stop["reason"] == "signal" and len(stop["peak_mem_gib_per_rank"]) == 2
    assert stop["signal"] == "another rank's"  # rank 0 writes the log and had no signal itself
    assert latest(run / "checkpoints").name == f"step-{k:06d}"
    assert "resume with the same launcher and 2 processes" in log1.read_text()

    # 2. SIGTERM to the launcher, which passes it to every rank
    log2 = tmp_path / "launcher.log"
    proc = _torchrun(over, log2, resume=True)
    _wait_for_step(proc, run, k + 2, log2)
    proc.send_signal(signal.SIGTERM)
    assert _wait(proc, log2) != 0
    stop = _stop_event(run)
    assert stop["reason"] == "signal" and stop["signal"] == "SIGTERM" and stop["step"] > k
    assert latest(run / "checkpoints").name == f"step-{stop['step']:06d}"

    # 3. resumed to the end, the curve is the one of the run never stopped
    log3 = tmp_path / "end.log"
    assert _wait(_torchrun(over, log3, resume=True), log3) == 0, log3.read_text()[-3000:]
    a, b = [e["loss"] for e in _steps(straight)], [e["loss"] for e in _steps(run)]
    assert len(a) == len(b) == 9
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
