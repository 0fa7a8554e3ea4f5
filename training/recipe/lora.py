"""LoRA fine-tuning recipe: `LoRARecipe(cfg).setup(); .train(); .cleanup()`.

Supports, chosen in the config (`training/config.py`):
- objectives: `sft` (generative: loss on the answer tokens only, chat template or the plain
  instruction format, packing with per-example attention) and `classify` (the reviewer
  model: LoRA + heads, `training/reviewer_model.py`);
- models: the CPU default, any local folder or (cached) hub name of the Llama / Mistral
  family, or an architecture preset with random weights (`model.random_init`);
- adapters: LoRA (r, alpha, dropout, target modules or all-linear, a subset of layers),
  DoRA (`lora.dora`), QLoRA (`lora.quantize: 4bit`, bitsandbytes, GPU);
- backends: `hf` (transformers + peft), `native` (our Triton kernels via `kernels.patch`, its
  options in the config's `kernels:` section, falling back to `hf` with a message where they
  cannot run), `unsloth` (own environment);
- precision: bf16 autocast (CPU and GPU), fp16 with a grad scaler (GPU), fp32;
- one process, DDP, or DeepSpeed ZeRO-0..3 with CPU offload (started by torchrun/deepspeed;
  gloo on CPU), `distributed.strategy`;
- checkpoints every `train.save_every` steps (atomic; adapter, heads, optimizer, scheduler,
  data order, RNG) and `--resume`, which continues the same loss curve;
- evaluation every `train.eval_every` steps on a fixed sample of the validation split, early
  stopping on its loss, the best adapter kept;
- per step: loss, lr, grad norm, tokens/s, peak memory, MFU (GPU) in metrics.jsonl and
  TensorBoard; at the end the loss curve PNG, the adapter (PEFT safetensors), the merged
  model on request, and a model card;
- guards: a NaN or exploding loss stops with the step and advice; out-of-memory reports the
  peak seen and what to change.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..config import Config, dump_config
from ..data import (BatchPlan, collate_classify, collate_packed, encode_classify, encode_sft, eval_sample,
                    load_split, pack, packing_needs_mask)
from ..logging import RunLogger, flops_per_token, peak_flops, peak_memory_gib, plot_loss


class TrainingError(ValueError):
    """A run that had to stop; the message says at which step, why, and what to change."""


def _dist_env() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower() \
        or isinstance(exc, MemoryError)


class LoRARecipe:
    def __init__(self, cfg: Config, resume: bool = False, profile_steps: int = 0, quiet: bool = False):
        self.cfg = cfg
        self.resume = resume
        self.profile_steps = profile_steps
        self.quiet = quiet
        self.rank, self.world, self.local_rank = _dist_env()
        self.run_dir = cfg.run_dir()
        self.step = 0
        self.best_eval = math.inf
        self.best_step = 0
        self.bad_evals = 0
        self.engine = None  # DeepSpeed engine, when used
        self.losses: list[float] = []

    # -- setup -------------------------------------------------------------------------------
    def setup(self) -> "LoRARecipe":
        cfg = self.cfg
        self.device = self._setup_device()
        self._setup_distributed()
        self.is_main = self.rank == 0
        self.logger = RunLogger(self.run_dir, enabled=self.is_main)
        torch.manual_seed(cfg.train.seed)
        if cfg.backend == "unsloth":
            with contextlib.suppress(ImportError):  # before transformers, or its patches are incomplete
                import unsloth  # noqa: F401
        from ..models import load_tokenizer

        self.tokenizer = load_tokenizer(cfg.model.name)
        self.model = self._build_model()
        self._setup_data()
        self._setup_optimizer()
        if self.resume:
            self._load_checkpoint()
        elif self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        mc = self.model_config
        self.logger.log("start" if not self.resume else "resume", step=self.step, objective=cfg.objective,
                        backend=self.backend, world_size=self.world, device=str(self.device),
                        card=torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                        trainable_params=self.n_trainable, train_examples=len(self.train_items),
                        train_rows=len(self.plan.lengths),
                        flops_per_token=flops_per_token(mc, cfg.data.max_length, with_lm_head=cfg.objective == "sft"),
                        peak_flops=peak_flops(self.device),
                        model_shape={k: getattr(mc, k, None) for k in ("hidden_size", "intermediate_size",
                                                                       "num_hidden_layers", "num_attention_heads",
                                                                       "num_key_value_heads", "vocab_size")},
                        kernels_patched=getattr(self, "kernels_patched", None))
        return self

    def _setup_device(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def _setup_distributed(self) -> None:
        d = self.cfg.distributed
        if d.strategy == "none":
            if self.world > 1:
                raise TrainingError(f"started with {self.world} processes but distributed.strategy is none; "
                                    "set distributed.strategy=ddp or deepspeed")
            return
        backend = d.backend or ("nccl" if self.device.type == "cuda" else "gloo")
        if d.strategy == "deepspeed":
            if self.device.type == "cpu":
                os.environ.setdefault("DS_ACCELERATOR", "cpu")  # must be set before deepspeed is imported
            try:
                import deepspeed
            except ImportError:
                raise TrainingError("distributed.strategy deepspeed needs DeepSpeed: "
                                    "pip install 'contract-review[deepspeed]' (deepspeed==0.19.8)") from None
            deepspeed.init_distributed(dist_backend=backend)
        else:
            torch.distributed.init_process_group(backend=backend)
        self.rank, self.world = torch.distributed.get_rank(), torch.distributed.get_world_size()

    # -- model ---------------------------------------------------------------------------------
    def _build_model(self):
        cfg = self.cfg
        m = cfg.model
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[m.dtype]
        self.backend = cfg.backend
        if m.attn_implementation == "flex_attention" and self.device.type != "cuda":
            # torch's flex attention has no backward on the CPU; sdpa gives the same attention there
            if self.is_main:
                print("model.attn_implementation flex_attention: no backward on the CPU; training with sdpa "
                      "(the same packed-example mask, dense)", file=sys.stderr)
            m.attn_implementation = "sdpa"
        if cfg.backend == "unsloth":
            return self._build_unsloth(dtype)
        quant = None
        if cfg.lora.quantize:
            if self.device.type != "cuda":
                raise TrainingError("lora.quantize (QLoRA) needs a CUDA device (bitsandbytes); "
                                    "on CPU remove lora.quantize")
            try:
                from transformers import BitsAndBytesConfig
                import bitsandbytes  # noqa: F401
            except ImportError:
                raise TrainingError("lora.quantize needs bitsandbytes: pip install 'contract-review[qlora]'") from None
            quant = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                        bnb_4bit_compute_dtype=torch.bfloat16)
                     if cfg.lora.quantize == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
        from ..models import load_causal_lm

        if cfg.distributed.strategy == "deepspeed" and cfg.distributed.zero_stage == 3:
            # partition parameters while the model is built, so a 13B model never sits whole on one device
            from transformers.integrations import HfDeepSpeedConfig

            from ..deepspeed_config import build_ds_config

            self._ds_config = build_ds_config(cfg, self.world, self.device.type == "cuda")
            self._hf_ds = HfDeepSpeedConfig(self._ds_config)  # must stay alive while building
        zero3 = cfg.distributed.strategy == "deepspeed" and cfg.distributed.zero_stage == 3
        # random weights are built where they train (a GPU initialises 13B in seconds); under ZeRO-3
        # deepspeed.zero.Init places and partitions them instead
        build_on = self.device if self.device.type == "cuda" and not quant and not zero3 else None
        lm = load_causal_lm(m.name, config=m.config, random_init=m.random_init, dtype=dtype,
                            attn_implementation=m.attn_implementation, overrides=m.overrides,
                            vocab_size=len(self.tokenizer) if m.random_init else None, quantization_config=quant,
                            device_map={"": self.device} if quant else None, seed=cfg.train.seed, device=build_on)
        if quant:
            from peft import prepare_model_for_kbit_training

            lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=m.gradient_checkpointing)
        elif m.gradient_checkpointing:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            lm.enable_input_require_grads()
        lm.config.use_cache = False
        # the adapters' initial values depend on train.seed alone, not on how much randomness building
        # the base model drew (CPU, GPU, ZeRO-3's zero.Init): 1-GPU and N-GPU runs start identical
        torch.manual_seed(cfg.train.seed + 1)
        lm = self._add_lora(lm)
        if cfg.backend == "native":
            lm = self._patch_native(lm)
        if cfg.objective == "classify":
            from ..reviewer_model import Labels, ReviewerModel

            model = ReviewerModel(lm, lm.config.hidden_size, Labels.from_taxonomy(), pooling=cfg.classify.pooling)
        else:
            model = lm
        self.model_config = lm.config
        if not quant and cfg.distributed.strategy != "deepspeed":
            model.to(self.device)
        self.n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return model

    def _add_lora(self, lm):
        from peft import LoraConfig, get_peft_model

        lc = self.cfg.lora
        task = "CAUSAL_LM" if self.cfg.objective == "sft" else None
        kwargs = dict(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=lc.modules(),
                      use_dora=lc.dora, bias="none")
        if lc.layers is not None:
            kwargs["layers_to_transform"] = lc.layers
        if task:
            kwargs["task_type"] = task
        return get_peft_model(lm, LoraConfig(**kwargs))

    def _patch_native(self, lm):
        reason = None
        try:
            from contract_review.kernels.patching import monkey_patch

            if self.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
                reason = "the Triton kernels need a CUDA device (or TRITON_INTERPRET=1, very slow)"
            else:
                k = self.cfg.kernels
                monkey_patch.patch(lm, offload_activations=k.offload_activations, offload_mlp=k.offload_mlp,
                              trim_recompute=k.trim_recompute)
                self.kernels_patched = getattr(lm, "_kernels_patch_counts", None)
        except Exception as exc:  # a kernel package that fails to import must not stop a run
            reason = f"kernels could not be used ({type(exc).__name__}: {exc})"
        if reason:
            self.backend = "hf"
            if self.rank == 0:
                print(f"backend native: {reason}; running the hf backend (transformers + peft) instead",
                      file=sys.stderr)
        return lm

    def _build_unsloth(self, dtype):
        try:
            from unsloth import FastLanguageModel
        except ImportError:
            raise TrainingError("backend unsloth: unsloth is not installed here. It pins its own torch and "
                                "transformers: install it in its own environment (pip install "
                                "'contract-review[unsloth]') or use backend hf / native") from None
        from ..models import random_model_folder, resolve_model

        lc, m = self.cfg.lora, self.cfg.model
        if m.random_init:
            # no weights exist for the presets offline: write the random model once (on the GPU, then
            # to disk) and let Unsloth load it like any checkpoint
            src = random_model_folder(m.config, tokenizer=self.tokenizer, dtype=dtype,
                                      attn_implementation=m.attn_implementation, overrides=m.overrides,
                                      seed=self.cfg.train.seed,
                                      device=self.device if self.device.type == "cuda" else None)
        else:
            src = resolve_model(m.name)
        lm, _ = FastLanguageModel.from_pretrained(str(src), max_seq_length=self.cfg.data.max_length, dtype=dtype,
                                                  load_in_4bit=lc.quantize == "4bit", load_in_8bit=lc.quantize == "8bit",
                                                  use_exact_model_name=True)
        torch.manual_seed(self.cfg.train.seed + 1)
        lm = FastLanguageModel.get_peft_model(lm, r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                              target_modules=lc.modules(), random_state=self.cfg.train.seed,
                                              max_seq_length=self.cfg.data.max_length,
                                              use_gradient_checkpointing="unsloth" if m.gradient_checkpointing else False)
        with contextlib.suppress(Exception):  # older Unsloth versions have no for_training
            FastLanguageModel.for_training(lm)
        self.model_config = lm.config
        self.n_trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
        if self.cfg.objective == "classify":
            raise TrainingError("backend unsloth supports objective sft only")
        return lm

    # -- data ------------------------------------------------------------------------------------
    def _setup_data(self) -> None:
        cfg = self.cfg
        train = load_split(cfg.data, cfg.data.train_split, seed=cfg.train.seed)
        evals = []
        if cfg.data.eval_split:
            evals = eval_sample(load_split(cfg.data, cfg.data.eval_split, subset=False), cfg.data.eval_limit,
                                seed=cfg.train.seed)
        self.train_records, self.eval_records = train, evals
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        if cfg.objective == "classify":
            from ..reviewer_model import Labels, type_pos_weight

            labels = Labels.from_taxonomy()
            encode = lambda r: {"input_ids": encode_classify(r.input, self.tokenizer, cfg.data.max_length),
                                **labels.targets(r)}
            self.train_items = [encode(r) for r in train]
            self.eval_items = [encode(r) for r in evals]
            pw, prior = type_pos_weight(train, labels, cfg.classify.pos_weight_cap)
            self.pos_weight = pw.to(self.device)
            self.model.init_type_bias(prior)
            lengths = [len(x["input_ids"]) for x in self.train_items]
        else:
            items = [e for e in (encode_sft(r, self.tokenizer, cfg.data.max_length) for r in train) if e]
            ev = [e for e in (encode_sft(r, self.tokenizer, cfg.data.max_length) for r in evals) if e]
            if cfg.data.packing:
                # rows are packed once, from a seeded order: the same rows in every (resumed) run
                self.train_items = pack(items, cfg.data.max_length)
                self.eval_items = pack(ev, cfg.data.max_length)
            else:
                self.train_items = [[e] for e in items]
                self.eval_items = [[e] for e in ev]
            lengths = [sum(len(e["input_ids"]) for e in row) for row in self.train_items]
        if not self.train_items:
            raise TrainingError(f"no training examples in {cfg.data.dir}/{cfg.data.train_split} after the subset "
                                "rules; check data.subset and data.max_length")
        self.plan = BatchPlan(lengths, cfg.optim.batch_size, seed=cfg.train.seed, rank=self.rank, world=self.world)
        # transformers finds packed examples from position_ids and builds their mask on the GPU
        # (sparse for flex, varlen for flash); only an old transformers needs our dense 4-D mask.
        # Decided after _build_model, which may have moved flex_attention to sdpa on a CPU.
        self._dense_mask = packing_needs_mask() and cfg.model.attn_implementation not in ("flash_attention_2",
                                                                                          "flex_attention")

    def _collate(self, items):
        if self.cfg.objective == "classify":
            return collate_classify(items, self.pad_id)
        return collate_packed(items, self.pad_id, block_mask=self._dense_mask)

    # -- optimizer ---------------------------------------------------------------------------------
    def _setup_optimizer(self) -> None:
        cfg = self.cfg
        head_params = [p for n, p in self.model.named_parameters() if p.requires_grad and n.startswith("heads.")]
        lora_params = [p for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith("heads.")]
        groups = [{"params": lora_params, "lr": cfg.optim.lr}]
        if head_params:
            groups.append({"params": head_params, "lr": cfg.optim.head_lr or cfg.optim.lr})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                           betas=(0.9, 0.999))
        total, warm = cfg.train.max_steps, cfg.optim.warmup_steps

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            if cfg.optim.scheduler == "constant":
                return 1.0
            progress = min(1.0, (step - warm) / max(1, total - warm))
            if cfg.optim.scheduler == "linear":
                return max(0.0, 1.0 - progress)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))  # cosine to 10%

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.train.precision == "fp16" and self.device.type == "cuda" else None
        d = cfg.distributed
        if d.strategy == "deepspeed":
            import deepspeed

            from ..deepspeed_config import build_ds_config

            ds_config = getattr(self, "_ds_config", None) or build_ds_config(cfg, self.world, self.device.type == "cuda")
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=self.model, optimizer=self.optimizer, lr_scheduler=self.scheduler, config=ds_config,
                model_parameters=[p for p in self.model.parameters() if p.requires_grad])
            self.device = self.engine.device if self.device.type == "cuda" else self.device
        elif d.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.ddp = DDP(self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    # -- one step --------------------------------------------------------------------------------
    def _autocast(self):
        p = self.cfg.train.precision
        if p == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if p == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _forward_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        net = self.engine or getattr(self, "ddp", None) or self.model
        with self._autocast():
            if self.cfg.objective == "classify":
                from ..reviewer_model import classify_loss

                logits = net(batch["input_ids"], batch["attention_mask"])
                loss, parts = classify_loss(logits, batch, self.pos_weight, self.cfg.classify.loss_weights)
            else:
                out = net(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                          position_ids=batch["position_ids"], labels=batch["labels"])
                loss, parts = out.loss, {}
        return loss.float(), parts

    def _micro_batch(self):
        idx = self.plan.next()
        items = [self.train_items[i] for i in idx]
        batch = self._collate(items)
        n_tokens = int((batch["input_ids"] != self.pad_id).sum()) if self.cfg.objective == "classify" else \
            sum(len(e["input_ids"]) for row in items for e in row)
        return batch, n_tokens

    def train_step(self) -> dict:
        cfg = self.cfg
        accum = cfg.optim.grad_accum
        total_loss, tokens, parts_sum = 0.0, 0, {}
        t0 = time.perf_counter()
        for micro in range(accum):
            batch, n = self._micro_batch()
            tokens += n
            sync = micro == accum - 1
            ctx = self.ddp.no_sync() if (hasattr(self, "ddp") and not sync) else contextlib.nullcontext()
            with ctx:
                loss, parts = self._forward_loss(batch)
                if self.engine is not None:
                    self.engine.backward(loss)
                    self.engine.step()  # DeepSpeed counts micro-steps and steps at the boundary
                else:
                    scaled = loss / accum
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total_loss += float(loss.detach()) / accum
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / accum
        grad_norm = None
        if self.engine is None:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            if cfg.optim.max_grad_norm:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm))
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            # zero_grad after the step, set_to_none: the gradients' memory is freed before the next forward
            self.optimizer.zero_grad(set_to_none=True)
        else:
            gn = self.engine.get_global_grad_norm()
            grad_norm = float(gn) if gn is not None else None
        if self.world > 1:
            t = torch.tensor([total_loss, float(tokens)], device=self.device)
            torch.distributed.all_reduce(t)
            total_loss, tokens = float(t[0]) / self.world, int(t[1])
        dt = time.perf_counter() - t0
        return {"loss": total_loss, "tokens": tokens, "step_s": dt, "grad_norm": grad_norm, **parts_sum}

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        if not self.eval_items:
            return {}
        net = self.engine or self.model
        net.eval()
        totals, n = {}, 0
        bs = self.cfg.optim.batch_size * (2 if self.cfg.objective == "classify" else 1)
        order = sorted(range(len(self.eval_items)), key=lambda i: len(self.eval_items[i]["input_ids"])
                       if self.cfg.objective == "classify" else 0)
        mine = order[self.rank :: self.world]
        for start in range(0, len(mine), bs):
            items = [self.eval_items[i] for i in mine[start : start + bs]]
            loss, parts = self._forward_loss(self._collate(items))
            for k, v in {"eval_loss": float(loss), **{f"eval_{k}": v for k, v in parts.items()}}.items():
                totals[k] = totals.get(k, 0.0) + v * len(items)
            n += len(items)
        net.train()
        if self.world > 1:
            keys = sorted(totals)
            t = torch.tensor([totals[k] for k in keys] + [float(n)], device=self.device)
            torch.distributed.all_reduce(t)
            totals, n = dict(zip(keys, t[:-1].tolist())), int(t[-1])
        return {k: v / max(n, 1) for k, v in totals.items()}

    # -- the loop ------------------------------------------------------------------------------------
    def train(self) -> dict:
        cfg = self.cfg
        (self.engine or self.model).train()
        fpt = flops_per_token(self.model_config, cfg.data.max_length, with_lm_head=cfg.objective == "sft")
        peak = peak_flops(self.device)
        bar = None
        if cfg.train.progress and self.is_main and not self.quiet:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.max_steps, initial=self.step, desc=self.run_dir.name, unit="step",
                       dynamic_ncols=True)
        prof = self._profiler() if self.profile_steps else None
        stop_reason = "max_steps"
        started = time.monotonic()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            while self.step < cfg.train.max_steps:
                try:
                    stats = self.train_step()
                except RuntimeError as exc:
                    if _is_oom(exc):
                        raise self._oom_error(exc) from None
                    if "nccl" in str(exc).lower():
                        self.logger.log("error", step=self.step + 1, kind="nccl", message=str(exc)[:500])
                        raise TrainingError(f"step {self.step + 1}: NCCL error: {str(exc)[:300]}. Run "
                                            "`contract-review doctor`; retry with NCCL_DEBUG=INFO, and "
                                            "NCCL_IB_DISABLE=1 if it mentions InfiniBand (IB)") from None
                    raise
                self.step += 1
                self._check_loss(stats["loss"])
                self.losses.append(stats["loss"])
                tps = stats["tokens"] / stats["step_s"] if stats["step_s"] > 0 else 0.0
                mfu = (tps * fpt / (peak * self.world)) if peak else None
                if self.step % cfg.train.log_every == 0 or self.step == 1:
                    self.logger.log("step", step=self.step, loss=round(stats["loss"], 6),
                                    lr=self.scheduler.get_last_lr()[0], grad_norm=stats["grad_norm"],
                                    tokens=stats["tokens"], tokens_per_s=round(tps, 1), step_s=round(stats["step_s"], 3),
                                    peak_mem_gib=round(peak_memory_gib(self.device), 3),
                                    mfu=round(mfu, 4) if mfu is not None else None, epoch=self.plan.epoch,
                                    **{k: round(v, 5) for k, v in stats.items()
                                       if k in ("clause_type", "party", "risk")})
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats['loss']:.4f}", tok_s=f"{tps:.0f}")
                if prof:
                    prof.step()
                    if self.step >= self._profile_start + self.profile_steps + 2:
                        prof.stop()
                        prof = None
                        stop_reason = "profiled"
                        break
                stop = False
                if self.eval_items and (self.step % cfg.train.eval_every == 0 or self.step == cfg.train.max_steps):
                    stop = self._after_eval(self.evaluate())
                if self.step % cfg.train.save_every == 0 or self.step == cfg.train.max_steps or stop:
                    self.save_checkpoint()
                if stop:
                    stop_reason = "early_stopping"
                    break
                if cfg.train.max_minutes and self._all_agree((time.monotonic() - started) / 60 > cfg.train.max_minutes):
                    if self.eval_items and self.step % cfg.train.eval_every != 0:
                        self._after_eval(self.evaluate())
                    self.save_checkpoint()
                    stop_reason = "time_limit"
                    break
        finally:
            if bar:
                bar.close()
            if prof:
                prof.stop()
        per_rank = self._peak_per_rank()
        self.logger.log("stop", step=self.step, reason=stop_reason, best_eval_loss=self._finite(self.best_eval),
                        peak_mem_gib=round(max(per_rank), 3), peak_mem_gib_per_rank=[round(x, 3) for x in per_rank],
                        train_s=round(time.monotonic() - started, 2))
        return {"step": self.step, "reason": stop_reason, "best_eval_loss": self._finite(self.best_eval),
                "losses": self.losses}

    def _all_agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any: a stop that one rank's clock decides alone would
        leave the others waiting in the next step's collectives."""
        if self.world == 1 or not torch.distributed.is_initialized():
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _peak_per_rank(self) -> list[float]:
        """Peak memory of every process (GiB; GPU memory on GPUs), gathered to all ranks."""
        mine = peak_memory_gib(self.device)
        if self.world == 1 or not torch.distributed.is_initialized():
            return [mine]
        t = torch.tensor([mine], dtype=torch.float64, device=self.device)
        out = [torch.zeros_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(out, t)
        return [float(x) for x in out]

    @staticmethod
    def _finite(x):
        return x if math.isfinite(x) else None

    def _check_loss(self, loss: float) -> None:
        cfg = self.cfg
        kind = "nan" if not math.isfinite(loss) else ("exploding" if loss > cfg.train.max_loss else None)
        if kind is None:
            return
        self.logger.log("error", step=self.step, kind=kind, loss=loss if math.isfinite(loss) else None)
        last = ckpt.latest(self.run_dir / "checkpoints")
        raise TrainingError(
            f"step {self.step}: the loss is {'not a number' if kind == 'nan' else f'{loss:.3g}, above train.max_loss'}. "
            f"Lower optim.lr (now {cfg.optim.lr:g}), keep optim.max_grad_norm set (now {cfg.optim.max_grad_norm}), "
            f"raise optim.warmup_steps (now {cfg.optim.warmup_steps}); with fp16 switch to bf16. "
            + (f"Resume from {last} with --resume after changing the config." if last else ""))

    def _oom_error(self, exc) -> TrainingError:
        peak = peak_memory_gib(self.device)
        c = self.cfg
        self.logger.log("error", step=self.step + 1, kind="oom", peak_mem_gib=round(peak, 3))
        return TrainingError(
            f"step {self.step + 1}: out of memory (peak seen {peak:.2f} GiB on {self.device}). Halve "
            f"optim.batch_size (now {c.optim.batch_size}) and double optim.grad_accum (now {c.optim.grad_accum}) "
            f"for the same effective batch; set model.gradient_checkpointing=true; lower data.max_length "
            f"(now {c.data.max_length}); or use lora.quantize=4bit (QLoRA) / distributed ZeRO-3 with offload.")

    def _after_eval(self, metrics: dict) -> bool:
        if not metrics:
            return False
        loss = metrics["eval_loss"]
        improved = loss < self.best_eval - 1e-6
        if improved:
            self.best_eval, self.bad_evals, self.best_step = loss, 0, self.step
            self._save_best()
        else:
            self.bad_evals += 1
        self.logger.log("eval", step=self.step, **{k: round(v, 6) for k, v in metrics.items()},
                        best=improved)
        pat = self.cfg.train.early_stopping_patience
        return pat is not None and self.bad_evals >= pat

    # -- saving ----------------------------------------------------------------------------------------
    def _unwrapped(self):
        return self.engine.module if self.engine is not None else self.model

    def _adapter_state(self) -> dict:
        model = self._unwrapped()
        if self.engine is not None and self.cfg.distributed.zero_stage == 3:
            import deepspeed

            params = [p for p in model.parameters() if p.requires_grad]
            with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
                return ckpt.trainable_state(model)
        return ckpt.trainable_state(model)

    def _save_best(self) -> None:
        """Keep the adapter with the lowest eval loss (what early stopping returns)."""
        state = self._adapter_state()
        if self.is_main:
            best = self.run_dir / "best"
            best.mkdir(parents=True, exist_ok=True)
            tmp = best / ".trainable.pt.tmp"
            torch.save({"step": self.step, "eval_loss": self.best_eval, "state": state}, tmp)
            os.replace(tmp, best / "trainable.pt")

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step, "trainable": self._adapter_state() if self.engine is None else None,
            "optimizer": self.optimizer.state_dict() if self.engine is None else None,
            "scheduler": self.scheduler.state_dict(), "plan": self.plan.state(),
            "rng": ckpt.rng_state(), "best_eval": self.best_eval, "bad_evals": self.bad_evals, "best_step": self.best_step,
            "scaler": self.scaler.state_dict() if self.scaler else None, "world": self.world,
        }
        root = self.run_dir / "checkpoints"
        if self.engine is not None:
            # every rank writes its shard of the optimizer into a shared temporary folder
            tmp_ds = root / f".ds-{self.step:06d}"
            self.engine.save_checkpoint(str(tmp_ds), tag="ds", client_state={})
            torch.distributed.barrier()
            if self.is_main:
                ckpt.save(root, self.step, state, self.cfg.train.keep_checkpoints,
                          extra_writer=lambda d: os.replace(tmp_ds, d / "deepspeed"))
            torch.distributed.barrier()
        elif self.is_main:
            ckpt.save(root, self.step, state, self.cfg.train.keep_checkpoints)
        if self.world > 1 and self.engine is None:
            torch.distributed.barrier()

    def _load_checkpoint(self) -> None:
        path = ckpt.latest(self.run_dir / "checkpoints")
        if path is None:
            raise TrainingError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}; start without --resume")
        state = ckpt.load(path)
        if state.get("world", 1) != self.world:
            raise TrainingError(f"--resume: the checkpoint was written by {state['world']} processes, this run has "
                                f"{self.world}; the data order would differ. Resume with the same number")
        model = self._unwrapped()
        if self.engine is not None:
            self.engine.load_checkpoint(str(path / "deepspeed"), tag="ds", load_module_strict=False)
        else:
            params = dict(model.named_parameters())
            for k, v in state["trainable"].items():
                params[k].data.copy_(v.to(params[k].device))
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.plan.load_state(state["plan"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.best_eval, self.bad_evals = state["step"], state["best_eval"], state["bad_evals"]
        self.best_step = state.get("best_step", 0)
        self.logger.truncate_after(self.step)
        if self.is_main and not self.quiet:
            print(f"resumed from {path} (step {self.step})", file=sys.stderr)

    def _profiler(self):
        from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        self._profile_start = self.step
        out = self.run_dir / "profile"
        out.mkdir(parents=True, exist_ok=True)
        prof = profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=self.profile_steps, repeat=1),
                       on_trace_ready=tensorboard_trace_handler(str(out), worker_name=f"rank{self.rank}"),
                       record_shapes=True, profile_memory=True)
        prof.start()
        return prof

    def finish(self, eval_fn=None) -> dict:
        """Write the final artifacts: best adapter (PEFT format), merged model on request, loss curve, card."""
        from ..card import write_card

        model = self._unwrapped()
        best = self.run_dir / "best" / "trainable.pt"
        if best.exists():
            saved = torch.load(best, map_location="cpu", weights_only=False)
            params = dict(model.named_parameters())
            if self.engine is not None and self.cfg.distributed.zero_stage == 3:
                import deepspeed

                with deepspeed.zero.GatheredParameters([params[k] for k in saved["state"]], modifier_rank=0):
                    for k, v in saved["state"].items():
                        params[k].data.copy_(v.to(params[k].device))
            else:
                for k, v in saved["state"].items():
                    params[k].data.copy_(v.to(params[k].device))
        adapter_dir = self.run_dir / "adapter"
        results: dict = {"adapter": str(adapter_dir)}
        if self.cfg.objective == "classify":
            results.update(self._finish_reviewer(model, adapter_dir))
        else:
            self._save_peft(model, adapter_dir)  # every rank: under ZeRO-3 the gather is collective
            if self.cfg.output.merge and self.is_main:
                if self.engine is not None and self.cfg.distributed.zero_stage == 3:
                    print("output.merge: skipped under ZeRO-3 (the base weights are partitioned); merge the "
                          "adapter afterwards on one machine with peft's merge_and_unload", file=sys.stderr)
                else:
                    merged = model.merge_and_unload()
                    merged.save_pretrained(self.run_dir / "merged", safe_serialization=True)
                    self.tokenizer.save_pretrained(self.run_dir / "merged")
                    results["merged"] = str(self.run_dir / "merged")
        if self.is_main:
            plot_loss(self.run_dir)
            write_card(self.run_dir, adapter_dir, self.cfg, results)
            if self.cfg.output.export:
                import shutil

                dest = Path(self.cfg.output.export)
                tmp = dest.with_name(f".{dest.name}.tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(adapter_dir, tmp)
                shutil.rmtree(dest, ignore_errors=True)
                os.replace(tmp, dest)
                results["exported"] = str(dest)
        return results

    def _save_peft(self, model, out: Path) -> None:
        from ..reviewer_model import cast_adapter

        if self.engine is not None and self.cfg.distributed.zero_stage == 3:
            import deepspeed

            params = [p for p in model.parameters() if p.requires_grad]
            with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
                if self.is_main:
                    model.save_pretrained(out, safe_serialization=True)
        elif self.is_main:
            model.save_pretrained(out, safe_serialization=True)
        if self.is_main:
            cast_adapter(out, self.cfg.output.adapter_dtype)

    def _finish_reviewer(self, model, adapter_dir: Path) -> dict:
        from ..reviewer_model import Labels, predict_probs, save_reviewer, tune_thresholds

        cfg = self.cfg
        labels = Labels.from_taxonomy()
        out: dict = {}
        thresholds = [0.5] * len(labels.clause_type)
        if cfg.classify.tune_thresholds and cfg.data.eval_split and self.is_main:
            model.eval()
            records = load_split(cfg.data, cfg.data.eval_split, subset=False)
            probs = predict_probs(model, self.tokenizer, [r.input for r in records], cfg.data.max_length,
                                  autocast=cfg.train.precision == "bf16", progress=not self.quiet)
            targets = torch.stack([labels.targets(r)["clause_type"] for r in records])
            thresholds = tune_thresholds(probs["clause_type"], targets)
            torch.save({"probs": probs, "ids": [r.id for r in records]}, self.run_dir / "eval_probs.pt")
            out["thresholds_tuned_on"] = f"{cfg.data.eval_split} ({len(records)} records)"
        if self.is_main:
            from ..card import data_version

            meta = {"base_model": cfg.model.name, "max_length": cfg.data.max_length, "thresholds": thresholds,
                    "model_version": f"reviewer-{cfg.output.name}-step{self.best_step or self.step}", "data_version": data_version(cfg.data.dir),
                    "objective": "classify", "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha,
                                                      "target_modules": cfg.lora.modules()}}
            save_reviewer(model, adapter_dir, meta, adapter_dtype=cfg.output.adapter_dtype)
        return out
