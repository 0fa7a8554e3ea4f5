# Two GPUs of one host (not run yet): the replicated base (DDP) against ZeRO-3 with whole-layer gathers and with
# DeepSpeed's per-module gathers, and what strategy auto chooses, beside one GPU in the same call.
#   bash bench/gpu_run.sh zero3_x2 420
# The workload of bench/lists/zero3.sh (random Llama-2-7B shapes, r=16 all-linear, micro-batch 4 of 2048 tokens per
# GPU). Scaling efficiency = tokens_per_s of a 2-GPU row / (2 x single_native7's) (summary.py). Expected: single
# ~50 s, ddp ~70 s, zero3 layer ~90 s, zero3 module ~110 s, auto ~70 s (it should choose DDP: a 7B base fits).
C7=configs/llama2-7b_lora_1gpu.yaml
CZ=configs/llama2-13b_lora_zero3.yaml
MODEL=${ZERO3_MODEL:-"model.config=llama2-7b model.dtype=bfloat16 train.precision=bf16 data.max_length=2048 data.subset.limit=2000"}
STEPS=${ZERO3_STEPS:-"train.max_steps=16"}
SPEED="model.name=$TOK model.random_init=true model.attn_implementation=sdpa model.gradient_checkpointing=true lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.packing=true data.eval_split=null optim.batch_size=4 optim.grad_accum=1 optim.warmup_steps=0 optim.scheduler=constant train.eval_every=100000 train.save_every=100000 train.seed=42 output.merge=false backend=native $MODEL $STEPS ${ZERO3_EXTRA:-}"
TRAIN="python3 bench/train.py run --warmup 4"
CUDA_VISIBLE_DEVICES=0 bench single_native7 85 $TRAIN --config $C7 $SPEED
bench ddp_2gpu_native7 100 $TRAIN --gpus 2 --config $C7 $SPEED distributed.strategy=ddp
bench zero3_layer_2gpu_native7 110 $TRAIN --gpus 2 --startup 50 --config $CZ $SPEED distributed.gather=layer
bench zero3_module_2gpu_native7 120 $TRAIN --gpus 2 --startup 50 --config $CZ $SPEED distributed.gather=module
bench auto_2gpu_native7 100 $TRAIN --gpus 2 --startup 50 --config $C7 $SPEED distributed.strategy=auto
