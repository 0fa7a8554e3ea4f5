# Two GPUs of one host: the loss curve of one GPU against ZeRO-3 on one and on two GPUs, with the same global batch
# and the same saved random model (a small Llama, 8 layers of width 1024), real data and tokenizer, seed 42.
C7=configs/llama2-7b_lora_1gpu.yaml
CZ=configs/llama2-13b_lora_zero3.yaml
CURVE="model.name=/tmp/curve_model model.random_init=false model.dtype=bfloat16 model.gradient_checkpointing=false lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear data.max_length=512 data.packing=true data.subset.limit=3000 data.eval_split=null optim.lr=1e-3 optim.warmup_steps=5 optim.scheduler=cosine optim.grad_accum=1 optim.max_grad_norm=1.0 train.max_steps=50 train.eval_every=100000 train.save_every=100000 train.seed=42 train.precision=bf16 output.merge=false backend=hf"
TRAIN="python3 bench/train.py run --warmup 0"
bench curve_model 90 python3 bench/train.py save-model --dir /tmp/curve_model --tokenizer $TOK --preset tiny-llama --seed 42 \
  --overrides '{"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 16}'
CUDA_VISIBLE_DEVICES=0 bench curve_single 110 $TRAIN --curve single --config $C7 $CURVE optim.batch_size=8
CUDA_VISIBLE_DEVICES=1 bench curve_zero3_1gpu 120 $TRAIN --curve zero3_1gpu --gpus 1 --startup 50 --config $CZ $CURVE optim.batch_size=8
bench curve_zero3_2gpu 130 $TRAIN --curve zero3_2gpu --gpus 2 --startup 50 --config $CZ $CURVE optim.batch_size=4
