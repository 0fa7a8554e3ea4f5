# Two GPUs of one host: ZeRO-3 across both against one GPU, same run (scaling efficiency: summary.py).
C7=configs/llama2-7b_lora_1gpu.yaml
CZ=configs/llama2-13b_lora_zero3.yaml
SPEED="model.name=$TOK model.random_init=true model.dtype=bfloat16 model.attn_implementation=sdpa model.gradient_checkpointing=true lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.max_length=2048 data.packing=true data.subset.limit=2000 data.eval_split=null optim.grad_accum=1 optim.warmup_steps=0 optim.scheduler=constant train.eval_every=100000 train.save_every=100000 train.seed=42 train.precision=bf16 output.merge=false"
TRAIN="python3 bench/train.py run --warmup 4"
CUDA_VISIBLE_DEVICES=0 bench single_native7 150 $TRAIN --config $C7 $SPEED backend=native model.config=llama2-7b optim.batch_size=4 train.max_steps=16
bench zero3_2gpu_native7 160 $TRAIN --gpus 2 --startup 60 --config $CZ $SPEED backend=native model.config=llama2-7b optim.batch_size=4 train.max_steps=12
