# One GPU: one LoRA step of our kernels against Unsloth at 13B (micro-batch 1), and ours on the legal
# configuration (r=32, alpha=64 on q and o) at 7B.
# The anchor workload of kernels/NOTES.md: Llama-2-7B shape (random weights), bf16, LoRA r=16 alpha=32 dropout 0 on
# all seven projections, seq 2048, non-reentrant gradient checkpointing, sdpa; micro-batch 4 (13B: 1).
C7=configs/llama2-7b_lora_1gpu.yaml
C13=configs/llama2-13b_lora_1gpu.yaml
ANCHOR="model.name=$TOK lora.r=16 lora.alpha=32 lora.dropout=0 lora.target_modules=all-linear data.max_length=2048 model.attn_implementation=sdpa"
LEGAL="model.name=$TOK lora.r=32 lora.alpha=64 lora.dropout=0 lora.target_modules=q_proj,o_proj data.max_length=2048 model.attn_implementation=sdpa"
STEP="python3 bench/lora_step.py --profile $PROF"
bench legal_native_graph 100 $STEP --config $C7 --bs 4 --cuda-graph $LEGAL backend=native
bench native13_graph_offload 120 $STEP --config $C13 --bs 1 --cuda-graph $ANCHOR backend=native kernels.offload_activations=true
bench unsloth13 270 $STEP --config $C13 --bs 1 $ANCHOR backend=unsloth
