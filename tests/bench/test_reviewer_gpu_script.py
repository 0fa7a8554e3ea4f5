"""bench/training/reviewer_gpu.sh: valid bash; `train` stops with a message when the base model's wheel parts are
missing (here: none carried), before any install or training."""

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "training" / "reviewer_gpu.sh"


def test_reviewer_gpu_script_parses_and_refuses_parts_that_do_not_join(tmp_path):
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    r = subprocess.run(["bash", str(SCRIPT), "train"], cwd=tmp_path, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "PARTS": str(tmp_path / "parts")})
    assert r.returncode == 1 and "missing part" in r.stdout and "stash" in r.stdout
