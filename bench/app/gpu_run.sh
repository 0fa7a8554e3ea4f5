#!/usr/bin/env bash
# One GPU-machine run: the reviewer app with a Llama-2-7B-shaped model on one GPU (target: a
# ~33,000-character CUAD contract reviewed end to end in under 10 s). No 7B weights exist offline,
# so make_random_reviewer.py writes a random 7B base + reviewer adapter, which the product then
# loads through its own model registry (--model BASE --adapter DIR -> load_reviewer onto the GPU in bf16).
# usage (device): TOKENIZER=.gpuassets/smollm2-tok bash bench/app/gpu_run.sh   -> $OUT/app_review_7b.json
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DIR=${DIR:-/tmp/rev7b}
set -o pipefail
timeout -k 5 ${CAP_BUILD:-150} python3 bench/app/make_random_reviewer.py --preset ${PRESET:-llama2-7b} \
  --tokenizer "${TOKENIZER:-default}" --out "$DIR" 2>&1 | tail -3 | tee "$OUT/app_build.log" || exit 1
timeout -k 5 ${CAP_RUN:-180} python3 bench/app/benchmark_review.py --model "$DIR/base" --adapter "$DIR/adapter" \
  --repeat ${REPEAT:-3} --json "$OUT/app_review_7b.json" 2>&1 | tail -45 | tee "$OUT/app_bench.log"
