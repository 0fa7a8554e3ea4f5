"""One rank of the ZeRO-3 gather check (started by torchrun from test_layer_gather.py): the model built as
`contract-review train` builds it under the config's strategy, trained for a few steps on one fixed batch
(the same on every rank, so the averaged gradient is that batch's), beside the same model built whole in this
process without any strategy. Writes OUT/rank<r>.json: per step the two losses and the largest gradient
difference, the adapters after the steps, how often our kernels ran, and the gatherer's counts.

    python -m torch.distributed.run --nproc_per_node 2 zero3_worker.py OUT CONFIG key=value ...
"""

import json
import sys
from pathlib import Path

import torch

from contract_review.kernels.patching import monkey_patch
from contract_review.training.backends.base import BuildSpec
from contract_review.training.backends.registry import build_model
from contract_review.training.config import DistributedConfig, load_config
from contract_review.training.data import load_split
from contract_review.training.distributed.registry import make_strategy
from contract_review.training.models import load_tokenizer
from contract_review.training.objectives.registry import make_objective
from contract_review.training.optim import build_optimizer

KERNELS = ("lora_mlp", "lora_linear", "lora_shared_input", "fused_lce")


def count_kernel_calls(counts: dict) -> None:
    """Counts the calls of the patch layer's fast-path kernels while ``counts['on']`` is set."""
    for name in KERNELS:
        fn = getattr(monkey_patch, name)

        def counted(*a, _fn=fn, _name=name, **k):
            if counts["on"]:
                counts[_name] = counts.get(_name, 0) + 1
            return _fn(*a, **k)

        setattr(monkey_patch, name, counted)


def main(out: Path, config: str, overrides: list[str]) -> None:
    import deepspeed  # the optional extra this check is about

    cfg = load_config(config, overrides)
    strategy = make_strategy(cfg)
    device = strategy.init()
    tok = load_tokenizer(cfg.model.name)
    objective = make_objective(cfg, tok)
    counts = {"on": False}
    count_kernel_calls(counts)

    # the reference first: once the strategy builds, transformers partitions every model it builds (zero.Init)
    # the same seed before each build: the random weights (rank 0's, broadcast by zero.Init) and adapters agree
    torch.manual_seed(cfg.train.seed)
    ref_cfg = cfg.model_copy(deep=True)
    ref_cfg.distributed = DistributedConfig()
    ref = objective.model(build_model(ref_cfg, BuildSpec(device, tokenizer=tok, task_type=objective.task_type)).lm)
    ref_opt = build_optimizer(ref, ref_cfg)
    torch.manual_seed(cfg.train.seed)
    with strategy.building():
        built = build_model(cfg, BuildSpec(device, tokenizer=tok, task_type=objective.task_type,
                                           partitioned=strategy.partitions_parameters, main=strategy.is_main))
    model = objective.model(built.lm)
    strategy.place(model, built.on_device)
    records = load_split(cfg.data, "train", seed=0)[:16]
    objective.fit(model, records, device)
    optimizer = build_optimizer(model, cfg)
    strategy.wrap(model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0))

    # both start from the same weights: zero.Init initialises the partitioned model its own way (rank 0's
    # draws, in another order), so the reference takes the partitioned model's weights
    ref_params = dict(ref.named_parameters())
    with torch.no_grad():
        for n, p in model.named_parameters():
            with deepspeed.zero.GatheredParameters([p]):
                ref_params[n].copy_(p)
    rows = [r for r in objective.encode(records) if objective.length(r)][:2]
    assert len(rows) == 2, "the check needs two training rows"
    batch = objective.collate(rows)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    strategy.net.train()
    ref.train()
    steps = []
    for _ in range(3):
        counts["on"] = True
        loss, _ = objective.loss(strategy.net, batch)
        counts["on"] = False
        strategy.engine.backward(loss)
        if strategy.layers:
            strategy.layers.finish()
        ds_grads = {n: deepspeed.utils.safe_get_full_grad(p) for n, p in model.named_parameters() if p.requires_grad}
        strategy.engine.step()

        ref_loss, _ = objective.loss(ref, batch)
        ref_loss.backward()
        ref_grads = {n: p.grad.detach().clone() for n, p in ref.named_parameters() if p.requires_grad}
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        diff = max(float((ds_grads[n].float() - ref_grads[n].float()).abs().max()) for n in names)
        scale = max(float(g.abs().max()) for g in ref_grads.values())
        state = strategy.trainable_state()
        ref_state = {n: p.detach() for n, p in ref.named_parameters() if p.requires_grad}
        weight_diff = max(float((state[n].float() - ref_state[n].float()).abs().max()) for n in names)
        steps.append({"loss": float(loss), "ref_loss": float(ref_loss), "grad_max_diff": diff, "grad_max": scale,
                      "weight_max_diff": weight_diff})

    result = {"steps": steps, "kernel_calls": {k: v for k, v in counts.items()
                                                                             if k != "on"},
              "stats": dict(strategy.layers.stats) if strategy.layers else None,
              "notes": strategy.notes(), "lora_shapes": {n: list(state[n].shape) for n in names[:4]}}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{strategy.rank}.json").write_text(json.dumps(result, indent=1))
    strategy.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
