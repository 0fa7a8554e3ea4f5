# Two GPUs of one host: ZeRO-3 across both against one GPU (scaling efficiency: summary.py), and the loss curve of
# one GPU against ZeRO-3 on one and two GPUs with the same global batch and the same saved random model.
C7=configs/llama2-7b_lora_1gpu.yaml
CZ=configs/llama2-13b_lora_zero3.yaml
SPEED="model.name=$TOK model.random_init=true model.dtype=bfloat16 model.attn_implementation=sdpa model.gradient_checkpointing=true lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.max_length=2048 data.packing=true data.subset.limit=2000 data.eval_split=null optim.grad_accum=1 optim.warmup_steps=0 optim.scheduler=constant train.eval_every=100000 train.save_every=100000 train.seed=42 train.precision=bf16 output.merge=false"
CURVE="model.name=/tmp/curve_model model.random_init=false model.dtype=bfloat16 model.gradient_checkpointing=false lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.max_length=512 data.packing=true data.subset.limit=3000 data.eval_split=null optim.lr=1e-3 optim.warmup_steps=5 optim.scheduler=cosine optim.grad_accum=1 optim.max_grad_norm=1.0 train.max_steps=50 train.eval_every=100000 train.save_every=100000 train.seed=42 train.precision=bf16 output.merge=false backend=hf"
TRAIN="python3 bench/train.py run --warmup 4"
CUDA_VISIBLE_DEVICES=0 bench single_native7 150 $TRAIN --config $C7 $SPEED backend=native model.config=llama2-7b optim.batch_size=4 train.max_steps=16
bench zero3_2gpu_native7 160 $TRAIN --gpus 2 --startup 60 --config $CZ $SPEED backend=native model.config=llama2-7b optim.batch_size=4 train.max_steps=12
bench curve_model 120 python3 bench/train.py save-model --dir /tmp/curve_model --tokenizer $TOK --preset tiny-llama --seed 42 \
  --overrides '{"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 16}'
CUDA_VISIBLE_DEVICES=0 bench curve_single 110 $TRAIN --warmup 0 --curve single --config $C7 $CURVE optim.batch_size=8
bench curve_zero3_2gpu 130 $TRAIN --warmup 0 --curve zero3_2gpu --gpus 2 --startup 50 --config $CZ $CURVE optim.batch_size=4
