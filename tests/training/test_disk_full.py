"""A write that finds no room (a full disk: /dev/full) is told apart from other errors and named with
the free space, the checkpoint size and what to change."""

from pathlib import Path

import pytest
import torch

from contract_review.training import checkpoint as ckpt
from contract_review.training.config import load_config
from contract_review.training.errors import disk_full_error, is_disk_full

CPU = Path(__file__).resolve().parents[2] / "configs" / "smollm2-135m_lora_cpu.yaml"
FULL = Path("/dev/full")


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")
def test_writes_to_a_full_disk_are_recognised_from_python_and_from_torch_save():
    with pytest.raises(OSError) as py:
        with FULL.open("w") as fh:
            fh.write("x")
    with pytest.raises(RuntimeError) as pt:
        torch.save({"w": torch.zeros(10_000)}, FULL)
    assert is_disk_full(py.value) and is_disk_full(pt.value)
    assert not is_disk_full(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_disk_full(FileNotFoundError(2, "No such file or directory"))


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")
def test_a_checkpoint_that_finds_no_room_leaves_nothing_half_written(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    first = ckpt.save(root, 1, {"step": 1, "w": torch.zeros(1000)})
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, path: real_save(obj, FULL))  # the disk fills up here
    with pytest.raises(RuntimeError) as err:
        ckpt.save(root, 2, {"step": 2, "w": torch.zeros(1000)})
    assert is_disk_full(err.value)
    assert sorted(p.name for p in root.iterdir()) == ["latest", first.name] and ckpt.latest(root) == first
    msg = str(disk_full_error(3, tmp_path, load_config(CPU), first))
    for part in ("after step 3: no room to write in", "GiB free there", "each checkpoint takes",
                 "train.keep_checkpoints", "output.dir", f"the last complete checkpoint, {first}, is intact"):
        assert part in msg, part
