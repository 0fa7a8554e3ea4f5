# One GPU, one call of <= 300 s: DeepSpeed ZeRO-3 on one GPU, gathering per module (DeepSpeed's own hooks, our
# kernels fall back to module forwards) against whole decoder layers (distributed.gather layer: one gather per
# layer and pass, the next layer prefetched, the recompute inside the backward's gather, our kernels on whole
# weights), paired with native on one GPU in the same call. `contract-review train` through bench/train.py.
#   bash bench/gpu_run.sh zero3 300
# Workload (as bench/lists/train.sh): random Llama-2-7B shapes, SmolLM2 tokenizer ($TOK), bf16, LoRA r=16 alpha=32
# dropout 0 on all linear layers, packed rows of 2048 tokens, non-reentrant checkpointing, micro-batch 4, grad_accum 1;
# ZeRO-3 with parameter persistence 1e6 (the adapters and norms stay resident, every base weight is partitioned).
# Rows: tokens_per_s (median after 4 warm-up steps), peak_mem_gib, zero (gather), zero3 (layer: units, GiB gathered
# per forward, prefetch hits, recompute gathers). Caps leave room for a cold machine (DeepSpeed's start and the
# random 7B's partitioning take most of a ZeRO-3 entry); setup ~15 s.
# PART: rows (default: the three rows), profile (one profiled ZeRO-3 step per gather, `train --profile 1`: the
# ranked table of where the step's time goes, before (module) and after (layer), into profiles_$RUN_ID.txt), all.
# ZERO3_MODEL / ZERO3_STEPS / ZERO3_EXTRA change the shape for the CPU check (tests/bench/slow/test_zero3_list.py).
source bench/training/zero3_workload.sh
PART=${PART:-rows}
if [[ $PART =~ ^(rows|all)$ ]]; then
  bench single_native7 90 $TRAIN --config $C7 $SPEED
  bench zero3_layer_native7 220 $TRAIN --startup 120 --config $CZ $SPEED distributed.gather=layer
  bench zero3_module_native7 220 $TRAIN --startup 120 --config $CZ $SPEED distributed.gather=module
fi
if [[ $PART =~ ^(profile|all)$ ]]; then
  export CZ SPEED
  bench zero3_profile_layer 250 bash bench/training/zero3_profile.sh layer
  bench zero3_profile_module 250 bash bench/training/zero3_profile.sh module
fi
:  # a list ends true: the PART tests above are filters, not failures
