"""The CPU precision every command uses: read from the processor's flags, forced by the environment,
or calibrated once and cached; and `train.precision: auto` resolved to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contract_review.training import precision
from contract_review.training.config import TrainConfig
from contract_review.training.doctor import check_environment
from contract_review.training.precision import (CALIBRATION_MARGIN, ENV, cpu_info, cpu_precision, resolve_precision,
                                                time_linear)

X86 = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: {family}
model\t\t: {model}
model name\t: {name}
flags\t\t: fpu sse sse2 avx avx2 fma {extra}

processor\t: 1
model name\t: another name, never read
flags\t\t: fpu
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd bf16 i8mm
CPU implementer\t: 0x41
"""


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch, tmp_path):
    """Each test decides afresh, with its own cache folder and no forcing from the environment."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("CONTRACT_REVIEW_CACHE", str(tmp_path / "cache"))
    cpu_precision.cache_clear()
    yield
    cpu_precision.cache_clear()


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text, encoding="utf-8")
    return path


def _with_cpuinfo(monkeypatch, path: Path) -> None:
    real = cpu_info
    monkeypatch.setattr(precision, "cpu_info", lambda p=path: real(p))


def test_the_first_processors_name_and_flags_are_read(tmp_path):
    path = _cpuinfo(tmp_path, X86.format(vendor="GenuineIntel", family=6, model=143,
                                         name="Intel(R) Xeon(R) Platinum 8480+", extra="avx512_bf16 amx_bf16"))
    name, flags = cpu_info(path)
    assert name == "Intel(R) Xeon(R) Platinum 8480+ (family 6, model 143)"
    assert {"avx2", "avx512_bf16", "amx_bf16"} <= flags and "another" not in name


@pytest.mark.parametrize("extra, expected", [("avx512_bf16", "bf16"), ("amx_bf16 amx_tile", "bf16"),
                                             ("avx512f avx512bw", "fp32"), ("", "fp32")])
def test_native_bf16_flags_decide_on_x86(tmp_path, monkeypatch, capsys, extra, expected):
    _with_cpuinfo(monkeypatch, _cpuinfo(tmp_path, X86.format(vendor="AuthenticAMD", family=25, model=1,
                                                            name="AMD EPYC 7R13", extra=extra)))
    choice = cpu_precision()
    assert (choice.precision, choice.how) == (expected, "processor flags")
    assert "AMD EPYC 7R13" in choice.reason
    assert cpu_precision() is choice  # decided once per process
    err = capsys.readouterr().err
    assert err.count("CPU precision:") == 1 and f"CPU precision: {expected}" in err and ENV in err


def test_this_machines_choice_is_the_faster_one_measured_here():
    """The flags of the CPU the tests run on decide, and the decision agrees with a measurement of a
    linear layer of SmolLM2's shape both ways (emulated bf16 was 6x slower than fp32 on an AMD EPYC)."""
    name, flags = cpu_info()
    if flags is None:
        pytest.skip("no x86 processor flags here: the choice is calibrated (see the calibration test)")
    choice = cpu_precision()
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert choice.precision == ("bf16" if native else "fp32") and choice.how == "processor flags"
    fp32_ms, bf16_ms = time_linear(0.1)
    if choice.precision == "fp32":
        assert bf16_ms > fp32_ms, f"{name}: bf16 {bf16_ms:.2f} ms, fp32 {fp32_ms:.2f} ms"


@pytest.mark.parametrize("value", ["fp32", "bf16", " BF16 "])
def test_the_environment_forces_the_choice(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    choice = cpu_precision()
    assert (choice.precision, choice.how) == (value.strip().lower(), "forced")


def test_a_bad_forced_value_names_the_allowed_ones(monkeypatch):
    monkeypatch.setenv(ENV, "half")
    with pytest.raises(ValueError, match="auto, fp32, bf16 or calibrate"):
        cpu_precision()


def test_without_flags_a_calibration_decides_once_and_is_cached(tmp_path, monkeypatch):
    _with_cpuinfo(monkeypatch, _cpuinfo(tmp_path, ARM))  # ARM's bf16 feature says nothing of PyTorch's kernels
    first = cpu_precision()
    assert first.how == "calibration" and "576x1536 linear layer took" in first.reason
    fp32_ms, bf16_ms = (float(x.split(" ms")[0]) for x in first.reason.split("took ")[1].split(", "))
    assert first.precision == ("bf16" if fp32_ms >= CALIBRATION_MARGIN * bf16_ms else "fp32")
    cached = json.loads((tmp_path / "cache" / "cpu_precision.json").read_text(encoding="utf-8"))
    assert len(cached) == 1 and f"torch {torch.__version__}" in next(iter(cached))
    cpu_precision.cache_clear()
    monkeypatch.setattr(precision, "time_linear", lambda *a: pytest.fail("calibrated twice"))
    again = cpu_precision()
    assert (again.precision, again.reason, again.how) == (first.precision, first.reason, "cached calibration")


def test_auto_is_the_default_and_resolves_to_the_cpu_choice_on_a_cpu(monkeypatch):
    assert TrainConfig().precision == "auto"
    choice = cpu_precision()
    assert resolve_precision("auto", torch.device("cpu"))[0] == choice.precision
    assert resolve_precision("bf16", torch.device("cpu")) == ("bf16", "set in the config")
    monkeypatch.setenv(ENV, "bf16")
    cpu_precision.cache_clear()
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16", f"forced: {ENV}=bf16")


def test_doctor_reports_the_cpu_precision_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("with a GPU, doctor reports the GPU's bf16 support instead")
    choice = cpu_precision()
    check = next(c for c in check_environment() if c.name == "cpu precision")
    assert check.status == "ok" and check.detail == f"{choice.precision} ({choice.how}: {choice.reason})"
