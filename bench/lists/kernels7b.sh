# One GPU: one LoRA step of our kernels against transformers + peft and Unsloth at 7B, same machine, one after
# the other.
# The anchor workload of kernels/NOTES.md: Llama-2-7B shape (random weights), bf16, LoRA r=16 alpha=32 dropout 0 on
# all seven projections, seq 2048, non-reentrant gradient checkpointing, sdpa; micro-batch 4 (13B: 1).
C7=configs/llama2-7b_lora_1gpu.yaml
ANCHOR="model.name=$TOK lora.r=16 lora.alpha=32 lora.dropout=0 lora.target_modules=all-linear data.max_length=2048 model.attn_implementation=sdpa"
OFFLOAD="kernels.offload_activations=true kernels.offload_mlp=0.5"
STEP="python3 bench/lora_step.py --profile $PROF"
bench native7_graph_offload 120 $STEP --config $C7 --bs 4 --cuda-graph $ANCHOR backend=native $OFFLOAD
bench native7 100 $STEP --config $C7 --bs 4 $ANCHOR backend=native
bench hf7 100 $STEP --config $C7 --bs 4 $ANCHOR backend=hf
bench unsloth7 200 $STEP --config $C7 --bs 4 $ANCHOR backend=unsloth
