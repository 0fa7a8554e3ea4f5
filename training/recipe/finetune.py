"""The fine-tuning recipe: `FineTuneRecipe(cfg).setup(); .train(); .finish()`.

Three independent choices of the config, each behind its own table:
- objective (`objective:`, training/objectives/): `sft` (generative: loss on the answer tokens only,
  chat template or the plain instruction format, packing with per-example attention) and `classify`
  (the reviewer model: LoRA + heads, `training/reviewer_model.py`);
- backend (`backend:`, training/backends/): `hf` (transformers + peft), `native` (our Triton kernels
  via `kernels.patch`, its options in the config's `kernels:` section), `unsloth` and `liger`
  (comparison backends, own environments). A backend that cannot run here stops the run with the
  reason and the fix; none switches to another;
- distribution (`distributed.strategy:`, training/distributed/): one process, DDP, or DeepSpeed
  ZeRO-0..3 with CPU offload (started by torchrun/deepspeed; gloo on CPU).

And whatever the choices:
- models: the CPU default, any local folder or (cached) hub name of the Llama / Mistral family, or
  an architecture preset with random weights (`model.random_init`);
- adapters: LoRA (r, alpha, dropout, target modules or all-linear, a subset of layers), DoRA
  (`lora.dora`), QLoRA (`lora.quantize: 4bit`, bitsandbytes, GPU);
- precision: bf16 autocast (CPU and GPU), fp16 with a grad scaler (GPU), fp32, or `auto` (the default):
  bf16 on a GPU that has it and on a CPU with native bf16, else fp32 (`precision.py`), logged at start;
- checkpoints every `train.save_every` steps (atomic; adapter, heads, optimizer, scheduler, data
  order, RNG) and `--resume`, which continues the same loss curve bit for bit;
- SIGTERM / SIGINT: the step finishes, a checkpoint is written and the run stops, every rank after the
  same step (`signals.py`);
- evaluation every `train.eval_every` steps on a fixed sample of the validation split, early
  stopping on its loss, the best adapter kept;
- per step: loss, lr, grad norm, tokens/s, peak memory, MFU (GPU) in metrics.jsonl and TensorBoard;
  at the end the loss curve PNG, the adapter (PEFT safetensors), the merged model on request, and a
  model card; `--profile N` traces N steps with the PyTorch profiler;
- guards: a NaN or exploding loss stops with the step and advice; out-of-memory reports the peak
  seen and what to change; an NCCL error says how to diagnose it.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler
from tqdm import tqdm

from .. import checkpoint as ckpt
from ..backends.base import BuildSpec
from ..backends.graph_step import GraphedSteps
from ..backends.registry import build_model
from ..card import write_card
from ..config import Config, dump_config
from ..data import BatchPlan, eval_sample, load_split
from ..distributed.registry import make_strategy
from ..errors import TrainingError, is_oom, loss_error, nccl_error, oom_error
from ..logging import RunLogger, flops_per_token, peak_flops, peak_memory_gib, plot_loss
from ..models import load_tokenizer
from ..objectives.registry import make_objective
from ..optim import build_optimizer, build_scheduler
from ..precision import autocast, resolve_precision
from ..preflight import start_over
from .signals import SignalStop, signal_name


class FineTuneRecipe:
    def __init__(self, cfg: Config, resume: bool = False, profile_steps: int = 0, quiet: bool = False,
                 records: dict[str, list] | None = None, overwrite: bool = False, stop: SignalStop | None = None):
        """``records``: the splits' records as `training.preflight` read and checked them (else read here);
        ``overwrite``: a new run removes an earlier run's checkpoints from its folder first; ``stop``: the
        signal handlers the loop asks whether to stop (none installed: it never is)."""
        self.cfg = cfg
        self.stop = stop or SignalStop()
        self.saved_step: int | None = None
        self.resume = resume
        self.overwrite = overwrite
        self.records = records or {}
        self.profile_steps = profile_steps
        self.quiet = quiet
        self.run_dir = cfg.run_dir()
        self.step = 0
        self.best_eval = math.inf
        self.best_step = 0
        self.bad_evals = 0
        self.losses: list[float] = []
        self.strategy = make_strategy(cfg)
        self.graphed: GraphedSteps | None = None

    @property
    def is_main(self) -> bool:
        return self.strategy.is_main

    @property
    def world(self) -> int:
        return self.strategy.world

    # -- setup -------------------------------------------------------------------------------------
    def setup(self) -> "FineTuneRecipe":
        cfg, strategy = self.cfg, self.strategy
        self.device = strategy.init()
        self.logger = RunLogger(self.run_dir, enabled=self.is_main)
        torch.manual_seed(cfg.train.seed)
        self.tokenizer = load_tokenizer(cfg.model.name)
        self.objective = make_objective(cfg, self.tokenizer)
        with strategy.building():
            built = build_model(cfg, BuildSpec(self.device, tokenizer=self.tokenizer,
                                               task_type=self.objective.task_type,
                                               partitioned=strategy.partitions_parameters, main=self.is_main))
        self.model = self.objective.model(built.lm)
        self.model_config = built.config
        strategy.place(self.model, built.on_device)
        self.n_trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self._setup_data()
        optimizer = build_optimizer(self.model, cfg)
        strategy.wrap(self.model, optimizer, build_scheduler(optimizer, cfg))
        self.device = strategy.device  # DeepSpeed's engine may name its own
        # `auto` is resolved once, here, so that every step and the tuned thresholds use the same choice
        self.precision, precision_reason = resolve_precision(cfg.train.precision, self.device)
        # kernels.cuda_graph (backend native): each micro-batch's forward and backward as one CUDA graph
        self.graphed = (GraphedSteps(strategy.net, self.objective, cfg, self.device, self.is_main)
                        if built.cuda_graph else None)
        if self.resume:
            self._load_checkpoint()
        elif self.is_main:
            if self.overwrite:
                start_over(cfg)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        mc = self.model_config
        self.logger.log("start" if not self.resume else "resume", step=self.step, objective=cfg.objective,
                        backend=cfg.backend, strategy=strategy.name, world_size=self.world, device=str(self.device),
                        card=torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                        precision=self.precision, precision_reason=precision_reason,
                        trainable_params=self.n_trainable, train_examples=len(self.train_records),
                        train_rows=len(self.plan.lengths),
                        flops_per_token=flops_per_token(mc, cfg.data.max_length, with_lm_head=self.objective.lm_head),
                        peak_flops=peak_flops(self.device),
                        model_shape={k: getattr(mc, k, None) for k in ("hidden_size", "intermediate_size",
                                                                       "num_hidden_layers", "num_attention_heads",
                                                                       "num_key_value_heads", "vocab_size")},
                        **built.notes, **strategy.notes())
        return self

    def _setup_data(self) -> None:
        cfg = self.cfg
        train = load_split(cfg.data, cfg.data.train_split, seed=cfg.train.seed,
                           records=self.records.get(cfg.data.train_split))
        evals = []
        if cfg.data.eval_split:
            evals = eval_sample(load_split(cfg.data, cfg.data.eval_split, subset=False,
                                           records=self.records.get(cfg.data.eval_split)),
                                cfg.data.eval_limit, seed=cfg.train.seed)
        self.train_records = train
        self.train_rows = self.objective.encode(train)
        self.eval_rows = self.objective.encode(evals)
        if not self.train_rows:
            raise TrainingError(f"no training examples in {cfg.data.dir}/{cfg.data.train_split} after the subset "
                                "rules; check data.subset and data.max_length")
        self.objective.fit(self.model, train, self.device)
        self.plan = BatchPlan([self.objective.length(r) for r in self.train_rows], cfg.optim.batch_size,
                              seed=cfg.train.seed, rank=self.strategy.rank, world=self.world)

    # -- one step --------------------------------------------------------------------------------
    def _forward_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with autocast(self.precision, self.device):
            loss, parts = self.objective.loss(self.strategy.net, batch)
        return loss.float(), parts

    def train_step(self) -> dict:
        accum = self.cfg.optim.grad_accum
        total_loss, tokens, parts_sum = 0.0, 0, {}
        t0 = time.perf_counter()
        for micro in range(accum):
            rows = [self.train_rows[i] for i in self.plan.next()]
            batch = self.objective.collate(rows)
            tokens += self.objective.tokens(rows, batch)
            with self.strategy.accumulating(last=micro == accum - 1):
                if self.graphed is not None:
                    loss, parts = self.graphed(batch)  # forward and backward, replayed
                else:
                    loss, parts = self._forward_loss(batch)
                    self.strategy.backward(loss, accum)
            total_loss += float(loss.detach()) / accum
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / accum
        grad_norm = self.strategy.optimizer_step()
        if self.world > 1:
            summed, all_tokens = self.strategy.sum([total_loss, float(tokens)])
            total_loss, tokens = summed / self.world, int(all_tokens)
        return {"loss": total_loss, "tokens": tokens, "step_s": time.perf_counter() - t0, "grad_norm": grad_norm,
                **parts_sum}

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        if not self.eval_rows:
            return {}
        net = self.strategy.net
        net.eval()
        totals, n = {}, 0
        bs = self.cfg.optim.batch_size * self.objective.eval_batch_factor
        mine = self.objective.eval_order(self.eval_rows)[self.strategy.rank :: self.world]
        for start in range(0, len(mine), bs):
            rows = [self.eval_rows[i] for i in mine[start : start + bs]]
            loss, parts = self._forward_loss(self.objective.collate(rows))
            for k, v in {"eval_loss": float(loss), **{f"eval_{k}": v for k, v in parts.items()}}.items():
                totals[k] = totals.get(k, 0.0) + v * len(rows)
            n += len(rows)
        net.train()
        if self.world > 1:
            keys = sorted(totals)
            *values, n = self.strategy.sum([totals[k] for k in keys] + [float(n)])
            totals, n = dict(zip(keys, values)), int(n)
        return {k: v / max(n, 1) for k, v in totals.items()}

    def _after_eval(self, metrics: dict) -> bool:
        """Logs an evaluation, keeps the best adapter; True when early stopping says stop."""
        if not metrics:
            return False
        loss = metrics["eval_loss"]
        improved = loss < self.best_eval - 1e-6
        if improved:
            self.best_eval, self.bad_evals, self.best_step = loss, 0, self.step
            self._save_best()
        else:
            self.bad_evals += 1
        self.logger.log("eval", step=self.step, **{k: round(v, 6) for k, v in metrics.items()}, best=improved)
        self.objective.after_eval(self.model, self.strategy, run_dir=self.run_dir, step=self.step, quiet=self.quiet)
        pat = self.cfg.train.early_stopping_patience
        return pat is not None and self.bad_evals >= pat

    # -- the loop ------------------------------------------------------------------------------------
    def train(self) -> dict:
        cfg = self.cfg
        self.strategy.net.train()
        bar = None
        if cfg.train.progress and self.is_main and not self.quiet:
            bar = tqdm(total=cfg.train.max_steps, initial=self.step, desc=self.run_dir.name, unit="step",
                       dynamic_ncols=True)
        self._prof = self._profiler() if self.profile_steps else None
        started = time.monotonic()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            with self.stop.deferring():
                stop_reason = self._loop(started, bar)
        finally:
            if bar:
                bar.close()
            if self._prof:
                self._prof.stop()
        per_rank = self.strategy.per_rank(peak_memory_gib(self.device))
        stopped = {}
        if stop_reason == "signal":
            stopped = {"signal": self.stop.name or "another rank's",
                       "checkpoint": str(ckpt.step_dir(self.run_dir / "checkpoints", self.step))}
        self.logger.log("stop", step=self.step, reason=stop_reason, best_eval_loss=_finite(self.best_eval),
                        peak_mem_gib=round(max(per_rank), 3), peak_mem_gib_per_rank=[round(x, 3) for x in per_rank],
                        train_s=round(time.monotonic() - started, 2), **stopped,
                        cuda_graph=self.graphed.describe() if self.graphed is not None else None,
                        **self.strategy.notes())
        return {"step": self.step, "reason": stop_reason, "best_eval_loss": _finite(self.best_eval),
                "losses": self.losses, **stopped}

    def _loop(self, started: float, bar) -> str:
        """Steps until max_steps or another reason to stop; the reason."""
        cfg = self.cfg
        fpt = flops_per_token(self.model_config, cfg.data.max_length, with_lm_head=self.objective.lm_head)
        peak = peak_flops(self.device)
        while self.step < cfg.train.max_steps:
            stats = self._guarded_step()
            self.step += 1
            self._check_loss(stats["loss"])
            self.losses.append(stats["loss"])
            tps = self._log_step(stats, fpt, peak)
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", tok_s=f"{tps:.0f}")
            if self._prof:
                self._prof.step()
                if self.step >= self._profile_start + self.profile_steps + 2:
                    self._prof.stop()
                    self._write_profile_table(self._prof)
                    self._prof = None
                    return "profiled"
            stop = False
            if self.eval_rows and (self.step % cfg.train.eval_every == 0 or self.step == cfg.train.max_steps):
                stop = self._after_eval(self.evaluate())
            if self.step % cfg.train.save_every == 0 or self.step == cfg.train.max_steps or stop:
                self.save_checkpoint()
            if stop:
                return "early_stopping"
            over_time = cfg.train.max_minutes and (time.monotonic() - started) / 60 > cfg.train.max_minutes
            if cfg.train.max_minutes and self.strategy.any_rank(bool(over_time)):
                if self.eval_rows and self.step % cfg.train.eval_every != 0:
                    self._after_eval(self.evaluate())
                self.save_checkpoint()
                return "time_limit"
            if self._stop_requested():
                if self.saved_step != self.step:
                    self.save_checkpoint()
                return "signal"
        return "max_steps"

    def _log_step(self, stats: dict, fpt: float, peak: float | None) -> float:
        """Logs a step (every `train.log_every`); its tokens per second."""
        tps = stats["tokens"] / stats["step_s"] if stats["step_s"] > 0 else 0.0
        if self.step % self.cfg.train.log_every == 0 or self.step == 1:
            mfu = (tps * fpt / (peak * self.world)) if peak else None
            self.logger.log("step", step=self.step, loss=round(stats["loss"], 6),
                            lr=self.strategy.scheduler.get_last_lr()[0], grad_norm=stats["grad_norm"],
                            tokens=stats["tokens"], tokens_per_s=round(tps, 1), step_s=round(stats["step_s"], 3),
                            peak_mem_gib=round(peak_memory_gib(self.device), 3),
                            mfu=round(mfu, 4) if mfu is not None else None, epoch=self.plan.epoch,
                            **{k: round(v, 5) for k, v in stats.items() if k in ("clause_type", "party", "risk_to", "severity")})
        return tps

    def _stop_requested(self) -> bool:
        """Whether a signal asked the run to stop, agreed by every rank: a launcher's signal reaches the
        ranks at slightly different moments, and a rank that stopped alone would leave the others waiting
        in the next step's collectives."""
        asked = self.stop.requested
        return self.strategy.any_rank(asked) if self.world > 1 else asked

    def log_stopped_at_once(self, signum: int) -> None:
        """The `stop` event of a run a signal ended outside the loop's step boundary (second signal, setup,
        finish): the steps since the last checkpoint were not saved."""
        if hasattr(self, "logger"):
            self.logger.log("stop", step=self.step, reason="signal", signal=signal_name(signum), at_once=True)

    def _guarded_step(self) -> dict:
        """One optimizer step; out of memory and NCCL failures stop the run with what to change."""
        try:
            return self.train_step()
        except RuntimeError as exc:
            if is_oom(exc):
                peak = peak_memory_gib(self.device)
                self.logger.log("error", step=self.step + 1, kind="oom", peak_mem_gib=round(peak, 3))
                raise oom_error(self.step + 1, peak, self.device, self.cfg) from None
            if "nccl" in str(exc).lower():
                self.logger.log("error", step=self.step + 1, kind="nccl", message=str(exc)[:500])
                raise nccl_error(self.step + 1, exc) from None
            raise

    def _check_loss(self, loss: float) -> None:
        if math.isfinite(loss) and loss <= self.cfg.train.max_loss:
            return
        finite = math.isfinite(loss)
        self.logger.log("error", step=self.step, kind="exploding" if finite else "nan", loss=loss if finite else None)
        raise loss_error(self.step, loss, self.cfg, ckpt.latest(self.run_dir / "checkpoints"))

    def _profiler(self):
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        self._profile_start = self.step
        out = self.run_dir / "profile"
        out.mkdir(parents=True, exist_ok=True)
        prof = profile(activities=acts, schedule=schedule(wait=1, warmup=1, active=self.profile_steps, repeat=1),
                       on_trace_ready=tensorboard_trace_handler(str(out), worker_name=f"rank{self.strategy.rank}"),
                       record_shapes=True, profile_memory=True)
        prof.start()
        return prof

    def _write_profile_table(self, prof) -> None:
        """profile/summary_rank<r>.txt: the profiled steps' operators ranked by device time, then by host
        time (a trace takes a viewer; the table is what a bench result keeps)."""
        out = self.run_dir / "profile" / f"summary_rank{self.strategy.rank}.txt"
        events = prof.key_averages()
        device_sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        text = (f"{self.profile_steps} profiled step(s), ranked by {device_sort}\n"
                + events.table(sort_by=device_sort, row_limit=40)
                + "\n\nranked by self_cpu_time_total (host work: hooks, gathers, launches)\n"
                + events.table(sort_by="self_cpu_time_total", row_limit=40))
        out.write_text(text, encoding="utf-8")

    # -- saving ----------------------------------------------------------------------------------------
    def _save_best(self) -> None:
        """Keep the adapter with the lowest eval loss (what early stopping returns)."""
        state = self.strategy.trainable_state()
        if self.is_main:
            best = self.run_dir / "best"
            best.mkdir(parents=True, exist_ok=True)
            tmp = best / ".trainable.pt.tmp"
            torch.save({"step": self.step, "eval_loss": self.best_eval, "state": state}, tmp)
            os.replace(tmp, best / "trainable.pt")

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "scheduler": self.strategy.scheduler.state_dict(), "plan": self.plan.state(),
                 "rng": ckpt.rng_state(), "best_eval": self.best_eval, "bad_evals": self.bad_evals,
                 "best_step": self.best_step, "world": self.world}
        self.strategy.save_checkpoint(self.run_dir / "checkpoints", self.step, state, self.cfg.train.keep_checkpoints)
        self.saved_step = self.step

    def _load_checkpoint(self) -> None:
        path = ckpt.latest(self.run_dir / "checkpoints")
        if path is None:
            raise TrainingError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}; start without --resume")
        state = ckpt.load(path)
        if state.get("world", 1) != self.world:
            raise TrainingError(f"--resume: the checkpoint was written by {state['world']} processes, this run has "
                                f"{self.world}; the data order would differ. Resume with the same number")
        self.strategy.load_checkpoint(path, state)
        self.strategy.scheduler.load_state_dict(state["scheduler"])
        self.plan.load_state(state["plan"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.best_eval, self.bad_evals = state["step"], state["best_eval"], state["bad_evals"]
        self.saved_step = self.step
        self.best_step = state.get("best_step", 0)
        self.logger.truncate_after(self.step)
        if self.is_main and not self.quiet:
            print(f"resumed from {path} (step {self.step})", file=sys.stderr)

    def finish(self) -> dict:
        """Write the final artifacts: the best adapter (the objective's format), the loss curve, the card."""
        best = self.run_dir / "best" / "trainable.pt"
        if best.exists():
            self.strategy.load_trainable(torch.load(best, map_location="cpu", weights_only=False)["state"])
        adapter_dir = self.run_dir / "adapter"
        results: dict = {"adapter": str(adapter_dir)}
        results.update(self.objective.finish(self.model, adapter_dir, self.strategy, run_dir=self.run_dir,
                                             step=self.best_step or self.step, quiet=self.quiet))
        if self.is_main:
            plot_loss(self.run_dir)
            write_card(self.run_dir, adapter_dir, self.cfg, results)
            if self.cfg.output.export:
                results["exported"] = str(_export(adapter_dir, Path(self.cfg.output.export)))
        return results

    def close(self) -> None:
        """Flushes the logs and leaves the process group; safe after a setup that failed part way."""
        if hasattr(self, "logger"):
            self.logger.close()
        self.strategy.close()


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _export(adapter_dir: Path, dest: Path) -> Path:
    """Copies the adapter folder to ``dest``, replacing what was there only once the copy is complete."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(adapter_dir, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest
