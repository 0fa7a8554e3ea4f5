# One GPU: Unsloth through `contract-review train` on the speed workload of train.sh (it writes the random 7B to a
# folder first, then loads it: a long start).
C7=configs/llama2-7b_lora_1gpu.yaml
SPEED="model.name=$TOK model.random_init=true model.dtype=bfloat16 model.attn_implementation=sdpa model.gradient_checkpointing=true lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.max_length=2048 data.packing=true data.subset.limit=2000 data.eval_split=null optim.grad_accum=1 optim.warmup_steps=0 optim.scheduler=constant train.eval_every=100000 train.save_every=100000 train.seed=42 train.precision=bf16 output.merge=false"
bench single_unsloth7 450 python3 bench/train.py run --warmup 4 --startup 150 --config $C7 $SPEED backend=unsloth model.config=llama2-7b optim.batch_size=4 train.max_steps=16
