"""Typed training configs: a YAML file plus `key=value` overrides, validated when read.

A config is a tree of pydantic models with `extra="forbid"`, so a misspelt key, a value of
the wrong type or a value out of range fails at load time with the field's dotted path and
what to write instead (`ConfigError`), never deep inside a training step.

    cfg = load_config("configs/smollm2-135m_reviewer_cpu.yaml", ["optim.lr=1e-4", "train.max_steps=20"])

Overrides use dotted paths; values are parsed as YAML (`lora.target_modules=[q_proj,v_proj]`,
`model.random_init=true`, `distributed=null`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the field and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = Field("default", description="'default' (SmolLM2-135M-Instruct), a local folder or a hub name")
    config: str | None = Field(None, description="an architecture preset (llama2-7b, llama2-13b, mistral-7b, "
                                                 "tiny-llama) or a folder with config.json, for random_init")
    random_init: bool = False
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # flex_attention: packed examples as a sparse block mask (torch >= 2.5; compiles on first use)
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] = "sdpa"
    gradient_checkpointing: bool = False
    overrides: dict[str, int | float | str | bool] = Field(default_factory=dict,
                                                           description="config.json fields to change (random_init)")

    @model_validator(mode="after")
    def _random_needs_config(self):
        if self.random_init and not self.config:
            raise ValueError("random_init needs model.config (e.g. llama2-7b): the architecture to build")
        return self


class LoraConfig(_Section):
    enabled: bool = Field(True, description="false: full fine-tuning (every weight but the token embeddings "
                                            "trains; `layers` then names the decoder layers that train); the "
                                            "reviewer ships its update as a rank-`r` SVD extraction in PEFT format")
    r: int = Field(32, ge=1, le=1024)
    alpha: float = Field(64, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(default_factory=lambda: ["q_proj", "o_proj"])
    layers: list[int] | None = Field(None, description="only these decoder layers get adapters (default: all)")
    dora: bool = False
    quantize: Literal["4bit", "8bit"] | None = Field(None, description="QLoRA: load the base model quantized "
                                                                       "with bitsandbytes (GPU only)")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str) and v != "all-linear":
            v = [m.strip() for m in v.split(",") if m.strip()]
        if isinstance(v, list) and not v:
            raise ValueError("give at least one module name, e.g. [q_proj, o_proj], or all-linear")
        return v

    def modules(self) -> list[str]:
        return list(ALL_LINEAR) if self.target_modules == "all-linear" else list(self.target_modules)


class SubsetConfig(_Section):
    """Which training records to use (the full CUAD train split is 87% `other`)."""

    other_fraction: float = Field(1.0, ge=0, le=1, description="share of `other`-only CUAD records kept")
    sources: list[Literal["cuad", "claudette", "annotation", "augmented", "user"]] | None = None
    limit: int | None = Field(None, ge=1, description="at most this many records (after the rest)")


class DataConfig(_Section):
    dir: str = "data/dataset"
    train_split: Literal["train", "validation", "test"] = "train"
    eval_split: Literal["train", "validation", "test"] | None = "validation"
    max_length: int = Field(256, ge=16)
    packing: bool = Field(True, description="sft: pack short examples into one row (attention kept per example)")
    subset: SubsetConfig = Field(default_factory=SubsetConfig)
    eval_limit: int | None = Field(1000, ge=1, description="evaluate on at most this many records (fixed sample)")


class OptimConfig(_Section):
    lr: float = Field(2e-4, gt=0, lt=1)
    head_lr: float | None = Field(None, gt=0, lt=1, description="classify: learning rate of the heads")
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(50, ge=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float | None = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1, description="examples (or packed rows) per micro-batch per process")
    grad_accum: int = Field(1, ge=1)


class TrainConfig(_Section):
    max_steps: int = Field(1000, ge=1)
    eval_every: int = Field(100, ge=1)
    early_stopping_patience: int | None = Field(3, ge=1, description="evaluations without a lower eval loss")
    save_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU that has it; on a CPU bf16 only with native bf16 (AVX512-BF16, "
                            "AMX), else fp32 (training/precision.py); fp16 needs a GPU (grad scaler)")
    log_every: int = Field(1, ge=1)
    max_loss: float = Field(1e4, gt=0, description="stop when the loss exceeds this (exploding)")
    progress: bool = True
    max_minutes: float | None = Field(None, gt=0, description="stop cleanly (checkpoint, adapter, card) after "
                                                              "this many minutes of training")


class DistributedConfig(_Section):
    """How a run spreads over processes (training/distributed/); started by torchrun or deepspeed for several."""

    strategy: Literal["none", "ddp", "deepspeed", "auto"] = Field(
        "none", description="none: one process; ddp: every GPU holds the whole base model (data parallel, the "
                            "adapters' gradients averaged); deepspeed: ZeRO at zero_stage (3: the base partitioned "
                            "across the GPUs); auto: ddp when the base, the adapters' training state and the "
                            "micro-batch's activations fit each GPU, else ZeRO-3 (with parameter offload when a "
                            "shard does not fit either); the choice and its reason are logged")
    zero_stage: Literal[0, 1, 2, 3] = 3
    offload_optimizer: bool = False
    offload_params: bool = False
    param_persistence_threshold: int = Field(1_000_000, ge=0, description="ZeRO-3: parameters below this many "
                                                                          "elements stay resident (LoRA matrices)")
    gather: Literal["layer", "module"] = Field(
        "layer", description="ZeRO-3: layer gathers each decoder layer whole, once for its forward and once for "
                             "its recompute and backward, prefetching the next, so our kernels read whole "
                             "weights; module is DeepSpeed's own gather around every module (slower; to compare)")
    memory_gib: float | None = Field(None, gt=0, description="strategy auto: the memory of each device to plan "
                                                             "with (default: the GPU's; on CPU, the host's share)")
    backend: Literal["nccl", "gloo"] | None = Field(None, description="default: nccl on GPU, gloo on CPU")

    @model_validator(mode="after")
    def _zero_options(self):
        zero3 = self.strategy in ("deepspeed", "auto") and self.zero_stage == 3
        if self.offload_params and not zero3:
            raise ValueError("offload_params partitions the base to offload it: it needs strategy deepspeed (or "
                             "auto) with zero_stage 3")
        if "gather" in self.model_fields_set and not zero3:
            raise ValueError("gather chooses how ZeRO-3 gathers the base: it needs strategy deepspeed (or auto) "
                             "with zero_stage 3")
        if "memory_gib" in self.model_fields_set and self.strategy != "auto":
            raise ValueError("memory_gib is what strategy auto plans with; set strategy: auto or remove it")
        return self

    def zero3_refusals(self, kernels: "KernelsConfig") -> list[str]:
        """Options ZeRO-3 cannot honour, each with the reason (checked at load for strategy deepspeed, and
        when strategy auto chooses ZeRO-3)."""
        out = []  # `auto` turns these off under ZeRO-3 by itself (training/backends/kernel_options.py)
        if kernels.offload_activations is True:
            out.append("kernels.offload_activations: its copies of the layer inputs to the host would run "
                       "beside ZeRO-3's gathers on the same GPU streams, a combination never verified on GPUs; "
                       "for a base that does not fit, offload the base instead (distributed.offload_params)")
        if getattr(kernels, "cuda_graph", False) is True:
            out.append("kernels.cuda_graph: a captured graph replays fixed addresses, and ZeRO-3 gathers the "
                       "weights into new buffers every step from host-side hooks; run without the CUDA graph")
        return out


class ClassifyConfig(_Section):
    """The reviewer model's heads (objective: classify)."""

    pooling: Literal["last", "mean", "last_mean"] = "last_mean"
    pos_weight_cap: float = Field(10.0, ge=1, description="cap of the per-type BCE positive weight neg/pos")
    loss_weights: dict[Literal["clause_type", "party", "risk_to", "severity"], float] = Field(
        default_factory=lambda: {"clause_type": 1.0, "party": 0.5, "risk_to": 0.5, "severity": 0.5})
    tune_thresholds: bool = Field(True, description="pick per-type thresholds on the eval split after training")
    snapshot_splits: list[Literal["train", "validation", "test"]] = Field(
        default_factory=list, description="at every evaluation from `snapshot_from_step` on, save the heads' "
                                          "probabilities on these whole splits (and the adapter) under "
                                          "snapshots/step<N>/, so the step can be chosen by a cross-fit later")
    snapshot_from_step: int = Field(1, ge=1)

    @field_validator("loss_weights", mode="before")
    @classmethod
    def _no_risk_head(cls, v):
        if isinstance(v, dict) and "risk" in v:
            raise ValueError("the risk head became two heads: give risk_to and severity weights instead of risk")
        return v


class ClmConfig(_Section):
    """Causal-LM training on raw text (objective: clm): domain-adaptive pretraining."""

    general_text: str | None = Field("data/corpora/general/python-docs-sample.txt.gz",
                                     description="general-English held-out text whose loss is reported before and "
                                                 "after training (forgetting); null: none")
    eval_tokens: int = Field(40_000, ge=256, description="tokens of each held-out text scored before and after")


class OutputConfig(_Section):
    dir: str = "runs/{name}"
    name: str | None = Field(None, description="run name (default: the config file's name)")
    merge: bool = Field(False, description="also write the base model with the adapter merged in")
    export: str | None = Field(None, description="copy the final adapter folder here (e.g. data/model/reviewer)")
    adapter_dtype: Literal["float32", "bfloat16"] = Field("float32", description="dtype of the saved adapter "
                                                                                 "weights (bfloat16 halves the size)")


class KernelsConfig(_Section):
    """Options of our Triton kernels (backend native): `kernels.patch`'s (kernels/patching/monkey_patch.py) and
    the CUDA-graphed step (kernels/schedule/cuda_graph.py). `auto` is decided at start for the machine and
    the run, and the run's log says what it chose and why (training/backends/kernel_options.py); a value
    the run cannot honour is refused at start with the reason. Another backend refuses any value set here
    (`kernels=null` on the command line clears the section: e.g. a shipped native config with backend=unsloth)."""

    cuda_graph: bool | Literal["auto"] = Field(
        "auto", description="each micro-batch's forward and backward replayed as one CUDA graph (packed rows "
                            "padded to data.max_length); needs one CUDA GPU, one process, objective sft or "
                            "another with no per-head losses, bf16 or fp32; auto: on where it can run")
    offload_activations: bool | Literal["auto"] = Field(
        "auto", description="keep each decoder layer's checkpointed input in pinned host memory, not on the GPU "
                            "(needs model.gradient_checkpointing; not under ZeRO-3); costs PCIe copies and pinned "
                            "host memory; auto: on with the CUDA graph and gradient checkpointing")
    offload_mlp: float | Literal["auto"] = Field(
        "auto", description="fraction of decoder layers (0-1) whose MLP gate/up outputs go to pinned host memory, "
                            "so the checkpoint recompute skips those GEMMs (needs model.gradient_checkpointing; "
                            "not under ZeRO-3); costs PCIe bandwidth, pinned host memory and one layer's outputs "
                            "of GPU memory (0.5: +5-7% tokens/s at 7B/13B in the H200 kernel bench); auto: 0.5 "
                            "where offload_activations is on, else 0")
    trim_recompute: bool = Field(True, description="the checkpoint recompute skips the MLP down projection, whose "
                                                   "output it never reads (same gradients, no cost); false only to "
                                                   "compare")
    fuse_qkv: bool = Field(True, description="q, k and v of one attention as one LoRA node (one x A^T GEMM, one dA "
                                             "GEMM, one dx buffer; same gradients); false only to compare")

    @field_validator("offload_mlp", mode="before")
    @classmethod
    def _not_a_switch(cls, v):
        # pydantic would read `true` as 1.0: every layer, the last included, which is rarely what was meant
        if isinstance(v, bool):
            raise ValueError("offload_mlp is a fraction of the decoder layers, not a switch: write e.g. 0.5")
        return v

    @field_validator("offload_mlp")
    @classmethod
    def _fraction(cls, v):
        if v != "auto" and not 0 <= v <= 1:
            raise ValueError("offload_mlp is a fraction of decoder layers: a number from 0 to 1, or auto")
        return v

    def changed(self) -> list[str]:
        """The fields set to something other than their default."""
        return [name for name, info in type(self).model_fields.items() if getattr(self, name) != info.default]

    def asked(self) -> list[str]:
        """The fields that ask a run for something: `auto`, off and 0 ask for nothing (a backend without our
        kernels honours them by doing nothing); trim_recompute and fuse_qkv set false ask for the slower path."""
        on = [c for c in ("cuda_graph", "offload_activations", "offload_mlp") if self.explicit(c)]
        return on + [c for c in ("trim_recompute", "fuse_qkv") if not getattr(self, c)]

    def explicit(self, name: str) -> bool:
        """The option asks for something (not auto, not off)."""
        v = getattr(self, name)
        return v != "auto" and bool(v)

    def check(self, cfg: "Config") -> None:
        """What no run of this config could honour, refused when the config is read (what only the machine
        decides, e.g. a CUDA device for the graph, is the backend's check at start)."""
        changed = self.asked()
        if changed and cfg.backend != "native":
            # other backends never call kernels.patch: a silently ignored option would mislead a benchmark
            raise ValueError(f"{', '.join('kernels.' + c for c in changed)}: kernels.* options apply to backend "
                             f"native only (backend is {cfg.backend}); set backend: native or remove them "
                             "(kernels=null clears the whole section)")
        offload = [f"kernels.{c}" for c in ("offload_activations", "offload_mlp") if self.explicit(c)]
        if offload and not cfg.model.gradient_checkpointing:
            # both move what the checkpoint recompute needs to host memory: without checkpointing there is none
            raise ValueError(f"{', '.join(offload)} {'needs' if len(offload) == 1 else 'need'} gradient "
                             "checkpointing to do anything; set model.gradient_checkpointing: true or remove them")
        zero3 = cfg.distributed.strategy == "deepspeed" and cfg.distributed.zero_stage == 3
        if offload and zero3:
            raise ValueError(f"{', '.join(offload)}: not under DeepSpeed ZeRO-3: its hooks keep the LoRA layers "
                             "and MLPs off the kernels' fast path (offload_mlp acts on that path only), and moving "
                             "the layer inputs to the host beside ZeRO-3's own gathering is untested on GPUs. "
                             "Remove them; distributed.offload_params / offload_optimizer are ZeRO-3's own offload")
        if self.cuda_graph is True:
            why = []
            if cfg.distributed.strategy != "none":
                why.append(f"one process only (distributed.strategy is {cfg.distributed.strategy}: its "
                           "collectives and hooks run host code inside the step)")
            if cfg.train.precision == "fp16":
                why.append("not with train.precision fp16 (the grad scaler checks for inf on the host)")
            if cfg.objective == "classify":
                why.append("not with objective classify (its per-head losses are read on the host every step)")
            if why:
                raise ValueError("kernels.cuda_graph: " + "; ".join(why) + ". Set kernels.cuda_graph: false "
                                 "(or auto, which turns it off where it cannot run)")


class Config(_Section):
    # the names of training/objectives/registry.py's and training/backends/registry.py's tables
    objective: Literal["sft", "classify", "clm"] = "sft"
    backend: Literal["native", "hf", "unsloth", "liger"] = Field(
        "hf", description="native: our Triton kernels; hf: transformers + peft; unsloth and liger: comparison "
                          "backends, each in its own environment")
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    clm: ClmConfig = Field(default_factory=ClmConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    kernels: KernelsConfig = Field(default_factory=KernelsConfig)

    @field_validator("kernels", mode="before")
    @classmethod
    def _cleared(cls, v):
        return {} if v is None else v  # kernels=null: the section's defaults

    @model_validator(mode="after")
    def _consistent(self):
        d = self.distributed
        refusals = d.zero3_refusals(self.kernels) if d.strategy == "deepspeed" and d.zero_stage == 3 else []
        if refusals:
            raise ValueError("DeepSpeed ZeRO-3 cannot honour " + "; ".join(refusals))
        if self.lora.quantize and self.distributed.strategy == "deepspeed" and self.distributed.zero_stage == 3:
            raise ValueError("lora.quantize (QLoRA) does not combine with ZeRO-3; use zero_stage 2 or no quantize")
        if self.backend == "unsloth" and self.distributed.strategy == "deepspeed":
            raise ValueError("backend unsloth does not run under DeepSpeed ZeRO-3 (see anchors); use backend hf")
        if self.backend == "unsloth" and self.objective != "sft":
            raise ValueError(f"backend unsloth trains objective sft only (objective is {self.objective}); "
                             "use backend hf or native")
        if (self.backend == "liger" and self.distributed.strategy == "deepspeed"
                and self.distributed.zero_stage == 3):
            # Liger's fused loss reads lm_head.weight outside its module's forward, where ZeRO-3 has not gathered it
            raise ValueError("backend liger does not run under DeepSpeed ZeRO-3; use backend native or hf")
        if not self.lora.enabled and (self.lora.quantize or self.lora.dora):
            raise ValueError("lora.enabled false (full fine-tuning) trains the weights themselves: remove "
                             "lora.quantize and lora.dora")
        if not self.lora.enabled and self.backend not in ("hf",):
            raise ValueError(f"lora.enabled false (full fine-tuning) runs on backend hf (backend is {self.backend}: "
                             "its kernels are LoRA's)")
        if not self.lora.enabled and self.distributed.strategy == "deepspeed":
            raise ValueError("lora.enabled false (full fine-tuning) is not wired to DeepSpeed here; use one process "
                             "or ddp")
        self.kernels.check(self)
        return self

    def run_dir(self) -> Path:
        return Path(self.output.dir.format(name=self.output.name or "run"))


# -- reading ------------------------------------------------------------------------------

def _set_dotted(tree: dict, key: str, value) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def _field_help(loc: tuple) -> str:
    """What the field at `loc` accepts, from the schema, to put in an error message."""
    if not loc:  # a whole-config error (Config._consistent): no one field to describe
        return ""
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return ""
        info = model.model_fields[part]
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return info.description or ""


def _explain(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
        path = ".".join(str(p) for p in loc) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent = Config
            for part in loc[:-1]:
                ann = parent.model_fields[part].annotation if part in getattr(parent, "model_fields", {}) else None
                parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
                if parent is None:
                    break
            known = ", ".join(parent.model_fields) if parent else ""
            msg = f"unknown key; known keys here: {known}" if known else "unknown key"
        else:
            got = err.get("input")
            if got is not None and not isinstance(got, dict):
                msg += f" (got {got!r})"
            helptext = _field_help(loc)
            if helptext:
                msg += f" — {helptext}"
        lines.append(f"{path}: {msg}")
    return ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines))


def parse_overrides(overrides: list[str] | None) -> list[tuple[str, object]]:
    out = []
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: write key=value with a dotted key, e.g. optim.lr=1e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _looks_float(value):
            value = float(value)
        out.append((key.strip(), value))
    return out


def _looks_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply `key=value` overrides, validate."""
    tree: dict = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found; shipped configs are in configs/")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (model:, lora:, ...) at the top level")
    for key, value in parse_overrides(overrides):
        _set_dotted(tree, key, value)
    try:
        cfg = Config.model_validate(tree)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    if cfg.output.name is None:
        cfg.output.name = Path(path).stem if path is not None else "run"
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
