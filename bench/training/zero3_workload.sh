# The ZeRO-3 lists' workload (bench/lists/zero3.sh, zero3_x2.sh), sourced by both so the one- and two-GPU rows
# measure the same thing: C7 (one-GPU config), CZ (the ZeRO-3 config), SPEED (the overrides), TRAIN (the runner).
# ZERO3_MODEL / ZERO3_STEPS / ZERO3_EXTRA change the shape for the CPU checks of the lists.
C7=configs/llama2-7b_lora_1gpu.yaml
CZ=configs/llama2-13b_lora_zero3.yaml
MODEL=${ZERO3_MODEL:-"model.config=llama2-7b model.dtype=bfloat16 train.precision=bf16 data.max_length=2048 data.subset.limit=2000"}
STEPS=${ZERO3_STEPS:-"train.max_steps=16"}
SPEED="model.name=$TOK model.random_init=true model.attn_implementation=sdpa model.gradient_checkpointing=true lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.packing=true data.eval_split=null optim.batch_size=4 optim.grad_accum=1 optim.warmup_steps=0 optim.scheduler=constant train.eval_every=100000 train.save_every=100000 train.seed=42 output.merge=false backend=native $MODEL $STEPS ${ZERO3_EXTRA:-}"
TRAIN="python3 bench/train.py run --warmup 4"
