# One GPU: what fits a 24 GiB card (the allocator capped at 24 GiB after the build): Mistral-7B shape (GQA) at
# micro-batch 2 and 4, Llama-2-13B QLoRA (bitsandbytes NF4) at 1 and 2; ours against transformers + peft.
MEM="model.name=$TOK lora.r=16 lora.alpha=32 lora.dropout=0 lora.target_modules=all-linear data.max_length=2048 model.attn_implementation=sdpa"
STEP="python3 bench/lora_step.py --mem-cap-gib 24"
bench mistral24_native 100 $STEP --config configs/mistral-7b_lora_1gpu.yaml --bs 2,4 $MEM backend=native
bench mistral24_hf 100 $STEP --config configs/mistral-7b_lora_1gpu.yaml --bs 2,4 $MEM backend=hf
bench qlora13_native 160 $STEP --config configs/llama2-13b_qlora_1gpu.yaml --bs 1,2 $MEM backend=native
bench qlora13_hf 160 $STEP --config configs/llama2-13b_qlora_1gpu.yaml --bs 1,2 $MEM backend=hf
