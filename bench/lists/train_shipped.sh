# One GPU: the shipped one-GPU LoRA configs as shipped, for 16 steps (their tokenizer from the folder the GPU machine has).
TRAIN="python3 bench/train.py run --warmup 4"
bench shipped_llama2_7b 170 $TRAIN --config configs/llama2-7b_lora_1gpu.yaml model.name=$TOK train.max_steps=16
bench shipped_mistral_7b 170 $TRAIN --config configs/mistral-7b_lora_1gpu.yaml model.name=$TOK train.max_steps=16
bench shipped_llama2_13b 190 $TRAIN --config configs/llama2-13b_lora_1gpu.yaml model.name=$TOK train.max_steps=16
