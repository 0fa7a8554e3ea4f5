# One H200, one call: `bash bench/gpu_run.sh speed 540` (BENCH_COMMIT=$(git rev-parse HEAD)). What `contract-review
# train` gives a user, in pairs measured in the same call; each entry its own run (one failing leaves the others
# standing). Random-weight models, the SmolLM2 tokenizer ($TOK), the real dataset. In order, with expected seconds
# (start-up included; a cold machine spends most of legal7's cap compiling and autotuning the kernels once):
# legal7 (~100-250 s): configs/llama2-7b_lora_1gpu.yaml as shipped (r=32 alpha=64 on q,o, dropout 0.05, packed
#   1,024-token rows, kernels: auto), 12 steps, tokens/s the median of steps 5-12. Its row's fast_path says how many
#   projections took the fused path (all, dropout included), kernels_plan what auto chose, cuda_graph the captures.
# legal7_peft (~100 s): the same config through transformers + peft (backend hf: peft's dropout and forward).
# curve_fused / curve_peft (~70 s / ~60 s): 150 steps of a small random Llama (8 layers of width 1024, r=16
#   all-linear, dropout 0.05, 512-token rows, seed 42) through backend native and backend hf: the fused dropout
#   (masks from the kernels' Philox stream) and peft's (torch's generator) should give curves that agree within the
#   dropout noise; summary.py prints "loss curve fused vs peft" (--curves RUN_ID --plot F.png draws them).
# all7 (~110 s): the benchmark's workload as a shipped config (configs/llama2-7b_lora-all_1gpu.yaml: r=16 all seven
#   projections, dropout 0.05, 2,048-token rows, micro-batch 4), 12 steps.
# legal7_eager (~90 s; runs with what is left, else a skipped row): legal7 with the CUDA graph and offloads off,
#   i.e. what auto's choice is worth in train.
# X_unsloth (~190 s at 7B, ~300 s at 13B: Unsloth writes the random model to a folder and loads it): entry X through
#   `train --backend unsloth` (kernels=null: its own kernels), same config, data and steps. Every shipped one-GPU
#   LoRA config as a pair, ours then Unsloth's, one pair per call (each pair's ratio is measured in one call):
#   PART=unsloth ONLY="all7 all7_unsloth" bash bench/gpu_run.sh speed 570     (~320 s)
#   PART=unsloth ONLY="legal7 legal7_unsloth" ...; ONLY="mistral7 mistral7_unsloth" ...   (~320 s each)
#   PART=unsloth ONLY="llama13 llama13_unsloth" ...   (~500 s)
# PART: main (default: the first six), unsloth (the pairs with Unsloth), all (every entry; the CPU check).
# EXTRA (empty on the GPU): overrides appended to every entry; the CPU check of this list
# (tests/bench/slow/test_speed_list.py) runs the same entries through it with a tiny model and 2 steps.
EXTRA=${EXTRA:-}
C7=configs/llama2-7b_lora_1gpu.yaml
CA=configs/llama2-7b_lora-all_1gpu.yaml
CM=configs/mistral-7b_lora_1gpu.yaml
C13=configs/llama2-13b_lora_1gpu.yaml
SHORT="model.name=$TOK train.max_steps=12"
TRAIN="python3 bench/train.py run --warmup 4 --startup 60"
[[ ${PART:-main} =~ ^(main|unsloth|all)$ ]] && bench legal7 260 $TRAIN --startup 150 --config $C7 $SHORT $EXTRA
[[ ${PART:-main} =~ ^(main|all)$ ]] && bench legal7_peft 130 $TRAIN --config $C7 $SHORT backend=hf kernels=null $EXTRA
CURVE="model.name=$TOK model.config=tiny-llama model.random_init=true model.dtype=bfloat16 lora.r=16 lora.alpha=32 lora.dropout=0.05 lora.target_modules=all-linear data.max_length=512 data.subset.limit=3000 data.eval_split=null optim.lr=1e-3 optim.warmup_steps=10 optim.batch_size=8 optim.grad_accum=1 train.max_steps=150 train.eval_every=100000 train.save_every=100000 train.seed=42"
SMALL='model.overrides={hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 16}'
[[ ${PART:-main} =~ ^(main|all)$ ]] && bench curve_fused 100 python3 bench/train.py run --warmup 10 --startup 40 --curve fused --config $C7 $CURVE "$SMALL" $EXTRA
[[ ${PART:-main} =~ ^(main|all)$ ]] && bench curve_peft 100 python3 bench/train.py run --warmup 10 --startup 40 --curve peft --config $C7 $CURVE "$SMALL" backend=hf kernels=null $EXTRA
[[ ${PART:-main} =~ ^(main|unsloth|all)$ ]] && bench all7 140 $TRAIN --config $CA $SHORT $EXTRA
[[ ${PART:-main} =~ ^(main|all)$ ]] && bench legal7_eager 150 $TRAIN --startup 80 --config $C7 $SHORT kernels.cuda_graph=false kernels.offload_activations=false kernels.offload_mlp=0 $EXTRA
UNSLOTH="python3 bench/train.py run --warmup 4 --startup 150"
[[ ${PART:-main} =~ ^(unsloth|all)$ ]] && bench all7_unsloth 420 $UNSLOTH --config $CA $SHORT backend=unsloth kernels=null $EXTRA
[[ ${PART:-main} =~ ^(unsloth|all)$ ]] && bench legal7_unsloth 420 $UNSLOTH --config $C7 $SHORT backend=unsloth kernels=null $EXTRA
[[ ${PART:-main} =~ ^(unsloth|all)$ ]] && bench mistral7 260 $TRAIN --startup 150 --config $CM $SHORT $EXTRA
[[ ${PART:-main} =~ ^(unsloth|all)$ ]] && bench mistral7_unsloth 420 $UNSLOTH --config $CM $SHORT backend=unsloth kernels=null $EXTRA
[[ ${PART:-main} =~ ^(unsloth|all)$ ]] && bench llama13 300 $TRAIN --startup 180 --config $C13 $SHORT $EXTRA
[[ ${PART:-main} =~ ^(unsloth|all)$ ]] && bench llama13_unsloth 540 python3 bench/train.py run --warmup 4 --startup 300 --config $C13 $SHORT backend=unsloth kernels=null $EXTRA
:  # a list ends true: the PART tests above are filters, not failures
