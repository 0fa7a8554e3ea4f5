"""`contract-review train` as a real process that runs out of room for its checkpoint (a file-size limit,
as `ulimit -f` sets: the kernel refuses the write as a full disk would): the run stops with a message
that names the room and the fix, and leaves no half-written checkpoint behind."""

import os
import resource
import subprocess
import sys
from pathlib import Path

from contract_review.training.cli import run_training
from contract_review.training.config import load_config
from contract_review.training.logging import read_log

ROOT = Path(__file__).resolve().parents[4]
CONFIG = str(ROOT / "configs" / "smollm2-135m_lora_cpu.yaml")
EXTRA = {"optim.batch_size": 2, "optim.grad_accum": 1, "data.subset.limit": 6, "train.save_every": 2,
         "train.max_steps": 2}


def test_a_checkpoint_without_room_stops_the_run_with_the_fix(small_dataset, tmp_path, tiny_overrides):
    sized = tmp_path / "sized"
    assert run_training(load_config(CONFIG, tiny_overrides(small_dataset, sized, **EXTRA)), quiet=True) == 0
    size = (sized / "checkpoints" / "step-000002" / "state.pt").stat().st_size
    limit = size // 2  # the logs and the config stay far below it; the checkpoint does not fit

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail EFBIG

    run = tmp_path / "full"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-m", "contract_review.cli", "train", "--config", CONFIG,
                           *tiny_overrides(small_dataset, run, **EXTRA)], cwd=ROOT, env=env, preexec_fn=limited,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "Traceback" not in err, err[-3000:]
    for part in (f"after step 2: no room to write in {run}", "file-size limit", "GiB free there",
                 "lower train.keep_checkpoints (now 2)", "output.dir", "no checkpoint was completed"):
        assert part in err, (part, err[-2000:])
    assert [p.name for p in (run / "checkpoints").iterdir()] == []  # the half-written one was removed
    errors = [e for e in read_log(run) if e["event"] == "error"]
    assert errors and errors[-1]["kind"] == "disk_full"
