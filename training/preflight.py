"""What `contract-review train` (and `train --check`) checks before it builds anything.

Building the model costs seconds to minutes and hundreds of megabytes, so everything that can be
known without it is checked first. Every problem found is reported at once, except that the records
(seconds to read) are read only once the folder, model and run checks have passed:

- data: `data.dir` exists and holds the train (and eval) split files; every record of them is
  valid (each bad line named by file and line: not UTF-8, not JSON, over the size limit, a field
  the record format refuses); the subset rules leave records to train on;
- model: `model.name` is the default, a local model folder (config.json, weights and a tokenizer,
  a supported architecture) or a hub name in the local cache (unless downloads are allowed);
  with `model.random_init`, `model.config` is a preset or a folder with config.json and
  `model.overrides` names fields that exist; a misspelt name gets the nearest known one;
- run folder: `--resume` has a checkpoint to continue from; a new run does not silently start
  over a folder holding an earlier run's checkpoints (`--overwrite` says to); output folders can
  be written.

The records read here are the ones the recipe trains on (`Checked.records`): nothing is read twice.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from contract_review.records import ClauseRecord, RecordError, check_records, find_split_file

from . import checkpoint as ckpt
from .config import Config, ConfigError

_SHOWN = 10  # bad records listed before "... and N more"
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin")
_TOKENIZER = ("tokenizer.json", "tokenizer.model", "vocab.json")


class PreflightError(ConfigError):
    """Problems found before training started; the message lists each with its fix."""


@dataclass
class Checked:
    """The validated records of each split the config uses, and one line per thing checked."""

    records: dict[str, list[ClauseRecord]] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)


def preflight(cfg: Config, resume: bool = False, overwrite: bool = False, resume_command: str | None = None) -> Checked:
    """Checks the config against the files it names; raises `PreflightError` listing every problem.
    ``resume_command``: the command line that would continue this run, quoted where a run is found."""
    checked = Checked()
    problems = _check_run_folder(cfg, resume, overwrite, checked, resume_command) + _check_model(cfg, checked)
    data_problems, splits = _check_data_folder(cfg)
    problems += data_problems
    if problems:
        if splits:
            problems.append("(the records were not read yet: that takes seconds, and the above stops the run anyway)")
    else:
        problems += _check_records(cfg, splits, checked)
    if problems:
        raise PreflightError("the run cannot start:\n  " + "\n  ".join(problems))
    return checked


# -- data --------------------------------------------------------------------------------------------

def _check_data_folder(cfg: Config) -> tuple[list[str], dict[str, Path]]:
    folder = Path(cfg.data.dir)
    where = "" if folder.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        return [f"data.dir {cfg.data.dir}{where} {what}; give the folder holding train.jsonl(.gz) and "
                "validation.jsonl(.gz) (`contract-review data build` writes data/dataset)"], {}
    problems, splits = [], {}
    for split in dict.fromkeys(s for s in (cfg.data.train_split, cfg.data.eval_split) if s):
        try:
            splits[split] = find_split_file(folder, split)
        except RecordError as exc:
            hint = "; or set data.eval_split=null to train without evaluation" if split == cfg.data.eval_split else ""
            problems.append(f"data.dir: {exc}{hint}")
    return problems, splits


def _check_records(cfg: Config, splits: dict[str, Path], checked: Checked) -> list[str]:
    problems: list[str] = []
    for split, path in splits.items():
        try:
            records, bad = check_records(path)
        except RecordError as exc:
            problems.append(str(exc))
            continue
        if bad:
            shown = bad[:_SHOWN] + ([f"... and {len(bad) - _SHOWN} more"] if len(bad) > _SHOWN else [])
            problems.append(f"{path}: {len(bad)} invalid of {len(records) + len(bad)} records "
                            "(`contract-review data check FILE` lists them all):\n    " + "\n    ".join(shown))
            continue
        checked.records[split] = records
        checked.summary.append(f"data: {path}: {len(records)} records")
    train = checked.records.get(cfg.data.train_split)
    sources = cfg.data.subset.sources
    if train and sources and not any(r.source in sources for r in train):
        present = sorted({r.source for r in train})
        problems.append(f"data.subset.sources {sources}: no {cfg.data.train_split} record comes from them; "
                        f"the file holds {', '.join(present)}")
    return problems


# -- model ---------------------------------------------------------------------------------------------

def _check_model(cfg: Config, checked: Checked) -> list[str]:
    # training.models imports transformers (seconds): only once the cheap checks have run
    from .models import DEFAULT_MODEL, PRESETS, default_model_dir

    m = cfg.model
    problems = []
    if m.name in ("", DEFAULT_MODEL):
        ready = (default_model_dir() / "model.safetensors").exists()
        checked.summary.append("model: the default (SmolLM2-135M-Instruct), "
                               + (f"converted in {default_model_dir()}" if ready else "converted on first use"))
    else:
        problems += _check_named_model(m.name, "model.name", checked, weights=not m.random_init)
    if m.random_init:
        if m.config in PRESETS or Path(m.config).expanduser().exists():
            problems += _check_architecture(cfg)
        else:
            near = difflib.get_close_matches(m.config, PRESETS, n=1)
            problems.append(f"model.config {m.config!r}: not a preset and not a folder with config.json"
                            + (f" (did you mean {near[0]!r}?)" if near else "")
                            + f"; presets: {', '.join(PRESETS)}")
        if not problems:
            checked.summary.append(f"model: random weights of {m.config}")
    return problems


def _check_named_model(name: str, key: str, checked: Checked, weights: bool) -> list[str]:
    from .models import ADAPTED_META, DEFAULT_MODEL, PRESETS, SUPPORTED_ARCHITECTURES, hub_offline

    path = Path(name).expanduser()
    if path.is_dir() and (path / ADAPTED_META).exists():
        # an adapted base (objective clm): merged into the base its adapted.json names when the model loads,
        # so that base is what must exist
        if not (path / "adapter_model.safetensors").exists():
            return [f"{key} {name}: an adapted base without its adapter weights (adapter_model.safetensors)"]
        try:
            base = json.loads((path / ADAPTED_META).read_text(encoding="utf-8")).get("base_model", DEFAULT_MODEL)
        except (OSError, ValueError) as exc:
            return [f"{key} {name}: {ADAPTED_META} is not readable JSON ({exc})"]
        if str(base) in ("", DEFAULT_MODEL):
            return []  # the default is converted on first use, like model.name default
        return _check_named_model(str(base), f"{key} {name}'s base ({ADAPTED_META})", checked, weights)
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            return [f"{key} {name}: not a model folder (no config.json); give a folder written by save_pretrained"]
        missing = []
        if weights and not any(any(path.glob(p)) for p in _WEIGHTS):
            missing.append("weights (*.safetensors)")
        if not any((path / t).exists() for t in _TOKENIZER):
            missing.append("a tokenizer (tokenizer.json)")
        try:
            kind = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as exc:
            return [f"{key} {name}: config.json is not readable JSON ({exc})"]
        if missing:
            return [f"{key} {name}: the folder has no {' and no '.join(missing)}; give the whole save_pretrained "
                    "folder"]
        if weights and kind not in SUPPORTED_ARCHITECTURES:
            return [f"{key} {name}: architecture {kind!r} is not supported; use one of {SUPPORTED_ARCHITECTURES}"]
        checked.summary.append(f"model: {path.resolve()} ({kind})")
        return []
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path: hub names are `org/name`
        return [f"{key} {name}: no such folder"]
    near = difflib.get_close_matches(name, [DEFAULT_MODEL, *PRESETS], n=1, cutoff=0.7)
    if near and near[0] in PRESETS:
        hint = f" ({near[0]!r} is an architecture preset: model.config={near[0]} model.random_init=true)"
    elif near:
        hint = f" (did you mean {near[0]!r}?)"
    else:
        hint = ""
    if not hub_offline():
        checked.summary.append(f"model: {name} from the Hugging Face hub (downloads allowed)")
        return []
    if _in_hub_cache(name):
        checked.summary.append(f"model: {name} from the local Hugging Face cache")
        return []
    return [f"{key} {name!r}: not a local folder and not in the local Hugging Face cache{hint}. Give a local "
            "model folder, or set CONTRACT_REVIEW_ALLOW_DOWNLOAD=1 on a connected machine"]


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except HFValidationError:
        return False


def _check_architecture(cfg: Config) -> list[str]:
    from .models import ModelError, architecture_config

    try:
        architecture_config(cfg.model.config, overrides=cfg.model.overrides)
    except (ModelError, OSError, ValueError) as exc:
        return [str(exc)]
    return []


# -- the run folder -------------------------------------------------------------------------------------

def _check_run_folder(cfg: Config, resume: bool, overwrite: bool, checked: Checked,
                      resume_command: str | None = None) -> list[str]:
    run = cfg.run_dir()
    found = ckpt.latest(run / "checkpoints")
    problems = []
    if resume and found is None:
        problems.append(f"--resume: no checkpoint in {run / 'checkpoints'}; start without --resume")
    elif resume:
        checked.summary.append(f"resume: from {found}")
    elif found is not None and not overwrite:
        cont = f"continue it with `{resume_command}`" if resume_command else "add --resume to continue it"
        problems.append(f"{run} holds an earlier run's checkpoints (latest {found.name}): {cont}, "
                        "--overwrite to start over (its checkpoints are deleted), or set output.name")
    targets = {"output.dir": run, "output.export": Path(cfg.output.export) if cfg.output.export else None}
    for key, target in targets.items():
        if target is not None and not _writable(target):
            problems.append(f"{key} {target}: cannot be written here (a file is in the way, or no permission); "
                            "choose another folder")
    return problems


def _writable(path: Path) -> bool:
    """Whether `path` can be created or written: its nearest existing ancestor is a writable folder."""
    path = path.expanduser().absolute()
    while not path.exists():
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def start_over(cfg: Config) -> None:
    """`--overwrite`: removes what an earlier run left that a new one would mix with its own."""
    run = cfg.run_dir()
    for name in ("checkpoints", "best"):
        shutil.rmtree(run / name, ignore_errors=True)
