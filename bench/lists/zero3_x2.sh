# Two GPUs of one host (not run yet): the replicated base (DDP) against ZeRO-3 with whole-layer gathers and with
# DeepSpeed's per-module gathers, and what strategy auto chooses, beside one GPU in the same call.
#   bash bench/gpu_run.sh zero3_x2 420
# The workload of bench/lists/zero3.sh (random Llama-2-7B shapes, r=16 all-linear, micro-batch 4 of 2048 tokens per
# GPU). Scaling efficiency = tokens_per_s of a 2-GPU row / (2 x single_native7's) (summary.py). Expected: single
# ~50 s, ddp ~70 s, zero3 layer ~90 s, zero3 module ~110 s, auto ~70 s (it should choose DDP: a 7B base fits).
source bench/training/zero3_workload.sh
CUDA_VISIBLE_DEVICES=0 bench single_native7 85 $TRAIN --config $C7 $SPEED
bench ddp_2gpu_native7 100 $TRAIN --gpus 2 --config $C7 $SPEED distributed.strategy=ddp
bench zero3_layer_2gpu_native7 110 $TRAIN --gpus 2 --startup 50 --config $CZ $SPEED distributed.gather=layer
bench zero3_module_2gpu_native7 120 $TRAIN --gpus 2 --startup 50 --config $CZ $SPEED distributed.gather=module
bench auto_2gpu_native7 100 $TRAIN --gpus 2 --startup 50 --config $C7 $SPEED distributed.strategy=auto
