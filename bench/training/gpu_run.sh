#!/usr/bin/env bash
# The training benchmark (issues #5 and #8) through the real `python -m contract_review.cli train`,
# the shipped configs overridden on the command line; every run under its own time cap, so the call ends
# inside the device's limit, and every run leaves a row (result, or error / skipped) in $OUT.
#
# usage (device, repo root; carry .whl and .gpuassets):
#   bash bench/training/gpu_run.sh call1 [budget_s]     # 1-GPU hf/native, ZeRO-3 7B on 1 and 2 GPUs, loss 1 vs 2 GPUs
#   bash bench/training/gpu_run.sh call2 [budget_s]     # Unsloth, 13B 1 GPU / ZeRO-3 2 GPUs, 13B offload on 1 GPU
#   phases can also be named one by one: A7 B2 E U C13n D C13h, or S7h S7n B2n DE1 E2 (see the case below)
# CPU smoke test (tests/training/test_bench_training_rows.py): SMOKE=1 PY=.venv/bin/python DATA=dir TOK=dir
# CHECK=1: only validate every run's config (`train --check`) and print the commands; no training, no GPU
#
# Workload of the speed rows: random-init Llama-2 shapes (no weights offline) with the SmolLM2 tokenizer
# (vocab 49152), bf16, LoRA r=16 alpha=32 dropout 0 on all linear layers (the anchors' workload), packed
# rows of 2048 tokens of the real dataset (data/dataset, a 2000-record subset), non-reentrant gradient
# checkpointing, micro-batch 4 (13B: 2), grad_accum 1, AdamW; ZeRO-3 with bf16 and persistence 1e6.
# Results: $OUT/train_bench.jsonl (one row per run), $OUT/loss_1v2.png, logs in $OUT/logs, run logs in $OUT/runs.
set -u
PHASES=${1:-call1}
BUDGET=${2:-555}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT/logs" "$OUT/rows" "$OUT/runs"
PY=${PY:-python3}
TB=bench/training/train_bench.py
RUNS=${RUNS:-/tmp/trainbench_runs}; mkdir -p "$RUNS"
ENVLOG=$OUT/train_env.log
SMOKE=${SMOKE:-0}
export RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-${PHASES// /+}}   # one id per device call, e.g. ...Z-call1
# NVLink multicast stays off in every process (KINDS.md)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       HF_HUB_DISABLE_TELEMETRY=1 UNSLOTH_STUDIO_DISABLED=1 UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_compiled_cache \
       PYTHONWARNINGS=ignore::FutureWarning,ignore::UserWarning
USER_CACHE=${CONTRACT_REVIEW_CACHE:-}
export CONTRACT_REVIEW_CACHE=${USER_CACHE:-/tmp/crcache}   # where random models for Unsloth are written
START=$SECONDS
PHASES=${PHASES//call1/A7 B2 E}
PHASES=${PHASES//call2/U C13n D C13h}

if [ "$SMOKE" = 1 ]; then   # CPU, gloo, tiny shapes: proves the launch commands and the rows, not speed
  : "${DATA:?SMOKE needs DATA=dataset folder}" "${TOK:?SMOKE needs TOK=tokenizer folder}"
  M7=tiny-llama; M13=tiny-llama; SEQ=128; MB=2; MB13=1; LIMIT=8; ST1=3; STZ=3; STO=3; WARM=1
  CSEQ=128; CSTEPS=4; CMB=2; CLIMIT=12; CPRESET=tiny-llama; COVER='{}'
  DEV0=; DEV1=; DEV01=; MINCAP=${MINCAP:-20}
  EXTRA=(model.dtype=float32 train.precision=fp32 distributed.backend=gloo)
  export DS_ACCELERATOR=cpu TRITON_INTERPRET=0 OMP_NUM_THREADS=1
else
  TOK=${TOK:-.gpuassets/smollm2-tok}; DATA=${DATA:-data/dataset}
  M7=llama2-7b; M13=llama2-13b; SEQ=2048; MB=4; MB13=2; LIMIT=2000; ST1=16; STZ=12; STO=8; WARM=4
  CSEQ=512; CSTEPS=50; CMB=4; CLIMIT=3000; CPRESET=tiny-llama
  COVER='{"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 16}'
  DEV0=${DEV0:-0}; DEV1=${DEV1:-1}; DEV01=${DEV01:-0,1}; MINCAP=${MINCAP:-45}   # a lane of a shared call may pin one GPU
  EXTRA=()
  # the random 7B Unsloth loads (13.5 GB) is written to RAM when /dev/shm has room: no slow-disk surprise
  SHM_GB=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
  [ -z "$USER_CACHE" ] && (( ${SHM_GB:-0} >= 40 )) && export CONTRACT_REVIEW_CACHE=/dev/shm/crcache
  export OMP_NUM_THREADS=8 TORCH_CUDA_ARCH_LIST=9.0
fi

[ "${CHECK:-0}" = 1 ] && ENVLOG=/dev/null
{
  echo "== env run_id=$RUN_ID phases: $PHASES budget ${BUDGET}s smoke=$SMOKE cache=$CONTRACT_REVIEW_CACHE"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm --format=csv
  nproc; free -g | head -2; df -h /tmp | tail -1
  if [ "$SMOKE" != 1 ] && [ "${CHECK:-0}" != 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
    t0=$SECONDS
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        $(ls .whl/opt/*.whl 2>/dev/null) || echo "PIP INSTALL FAILED"
    echo "wheels installed into /tmp/site in $((SECONDS-t0))s"
  fi
} > "$ENVLOG" 2>&1
[ -d /tmp/site ] && [ "$SMOKE" != 1 ] && [ "${CHECK:-0}" != 1 ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
[ "${CHECK:-0}" = 1 ] || $PY - >> "$ENVLOG" 2>&1 <<'EOF'
import importlib.metadata as m
for n in ["torch", "transformers", "peft", "accelerate", "deepspeed", "pydantic", "triton", "unsloth", "bitsandbytes",
          "matplotlib", "typing_extensions", "fsspec"]:
    try: print(f"  {n}=={m.version(n)}")
    except Exception: print(f"  {n}: not installed")
import torch
print("  cuda", torch.version.cuda, torch.cuda.device_count(), "x", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
import contract_review.cli  # noqa: F401  (the project imports with what is installed)
print("  contract_review.cli imports")
EOF
cat "$ENVLOG"

left() { echo $(( BUDGET - (SECONDS - START) - 8 )); }
capped() { local c=$1 l; l=$(left); echo $(( c < l ? c : l )); }

# run_one NAME PHASE STRATEGY GPUS DEVICES NPROC CAP STARTUP_S WARMUP CURVE CONFIG overrides...
#   NPROC 0: plain python; else torchrun with NPROC processes. STARTUP_S: expected seconds before step 1
#   (train.max_minutes = cap - startup - 15 s, so a slow run still stops cleanly and writes its row).
run_one() {
  local name=$1 phase=$2 strategy=$3 gpus=$4 devs=$5 nproc=$6 cap=$7 startup=$8 warm=$9 curve=${10} config=${11}
  shift 11
  local c tl; c=$(capped "$cap"); tl=$(date +%s.%N)
  local -a add=("$TB" add --name "$name" --phase "$phase" --strategy "$strategy" --gpus "$gpus" --warmup "$warm"
                --run-dir "$RUNS/$name" --rows "$OUT/rows" --t-launch "$tl")
  [ "$curve" != - ] && add+=(--curve "$curve")
  local -a targs=(--config "$config" "$@" "${EXTRA[@]}")   # for the row of a run that dies before its config is written
  if (( c < MINCAP )); then
    echo "SKIP $name (only $(left)s left)" | tee -a "$ENVLOG"
    $PY "${add[@]}" --skipped "only $(left)s of the call's ${BUDGET}s budget left" -- "${targs[@]}" | tee -a "$ENVLOG"
    return
  fi
  local maxmin; maxmin=$(awk -v c="$c" -v s="$startup" 'BEGIN{m=(c-s-15)/60; if(m<0.25)m=0.25; printf "%.2f", m}')
  local -a cmd
  if (( nproc == 0 )); then cmd=("$PY" -m contract_review.cli train --config "$config")
  else cmd=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m contract_review.cli train --config "$config")
  fi
  cmd+=("$@" "output.dir=$RUNS/$name" "train.max_minutes=$maxmin" "${EXTRA[@]}")
  if [ "${CHECK:-0}" = 1 ]; then
    $PY -m contract_review.cli train --config "$config" "$@" "output.dir=$RUNS/$name" "${EXTRA[@]}" --check > /dev/null
    echo "CHECK $name rc=$? :: CUDA_VISIBLE_DEVICES=$devs $(printf '%q ' "${cmd[@]}")"
    return
  fi
  rm -rf "${RUNS:?}/$name"
  echo "== $name (cap ${c}s, GPUs '$devs') at +$((SECONDS-START))s" | tee -a "$ENVLOG"
  local t0=$SECONDS rc
  CUDA_VISIBLE_DEVICES=$devs timeout -k 10 "$c" "${cmd[@]}" > "$OUT/logs/$name.log" 2>&1; rc=$?
  echo "   $name rc=$rc took $((SECONDS-t0))s" | tee -a "$ENVLOG"
  (( rc != 0 )) && { echo "--- tail of $name.log"; grep -v -E 'FutureWarning|UserWarning|warnings.warn' "$OUT/logs/$name.log" | tail -8; } | tee -a "$ENVLOG"
  $PY "${add[@]}" --log "$OUT/logs/$name.log" --rc "$rc" --cap "$c" \
      --command "CUDA_VISIBLE_DEVICES=$devs $(printf '%q ' "${cmd[@]}")" -- "${targs[@]}" | tee -a "$ENVLOG"
  mkdir -p "$OUT/runs/$name"
  cp "$RUNS/$name/metrics.jsonl" "$RUNS/$name/config.yaml" "$OUT/runs/$name/" 2>/dev/null
}

# the speed workload (every speed run), and ZeRO-3 on top of it
BENCH=(model.name="$TOK" model.random_init=true model.dtype=bfloat16 model.attn_implementation=sdpa
       model.gradient_checkpointing=true lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear
       data.dir="$DATA" data.max_length=$SEQ data.packing=true data.subset.limit=$LIMIT data.eval_split=null
       optim.grad_accum=1 optim.warmup_steps=0 optim.scheduler=constant
       train.eval_every=100000 train.save_every=100000 train.progress=false train.seed=42 train.precision=bf16
       output.merge=false)
Z3=(distributed.strategy=deepspeed distributed.zero_stage=3 distributed.param_persistence_threshold=1000000
    distributed.offload_params=false distributed.offload_optimizer=false)
C7=configs/llama2-7b_lora_1gpu.yaml; C13=configs/llama2-13b_lora_1gpu.yaml; CZ=configs/llama2-13b_lora_zero3.yaml

single()  { # name phase backend model mb devs cap [overrides...]
  local cfg=$C7; [ "$4" = "$M13" ] && [ "$SMOKE" != 1 ] && cfg=$C13
  run_one "$1" "$2" single 1 "$6" 0 "$7" 45 $WARM - "$cfg" "${BENCH[@]}" backend="$3" model.config="$4" \
          optim.batch_size="$5" train.max_steps=$ST1 "${@:8}"; }
zero3()   { # name phase backend model mb nproc devs cap
  run_one "$1" "$2" zero3 "$6" "$7" "$6" "$8" 60 $WARM - "$CZ" "${BENCH[@]}" "${Z3[@]}" backend="$3" \
          model.config="$4" optim.batch_size="$5" train.max_steps=$STZ; }
# loss curves: a small model saved once (identical weights for every run), real tokenizer and data,
# the same global batch (1 process x 2*CMB rows, 2 processes x CMB rows) and seed
CURVE=(model.name=/tmp/curve_model model.random_init=false model.dtype=bfloat16 model.gradient_checkpointing=false
       lora.r=16 lora.alpha=32 lora.dropout=0.0 lora.target_modules=all-linear
       data.dir="$DATA" data.max_length=$CSEQ data.packing=true data.subset.limit=$CLIMIT data.eval_split=null
       optim.lr=1e-3 optim.warmup_steps=5 optim.scheduler=cosine optim.grad_accum=1 optim.max_grad_norm=1.0
       train.max_steps=$CSTEPS train.eval_every=100000 train.save_every=100000 train.progress=false
       train.seed=42 train.precision=bf16 output.merge=false backend=hf)

for p in $PHASES; do
  case $p in
    A7)   # a) 1-GPU hf and native (GPU 0) | b) ZeRO-3 on 1 GPU, native and hf (GPU 1)
          ( single A7.single_hf7 a hf $M7 $MB "$DEV0" 130
            single A7.single_native7 a native $M7 $MB "$DEV0" 150 ) &
          ( zero3 A7.z3n1_native7 b native $M7 $MB 1 "$DEV1" 150
            zero3 A7.z3n1_hf7 b hf $M7 $MB 1 "$DEV1" 140 ) &
          wait ;;
    B2)   # b) ZeRO-3 on 2 GPUs, native then hf
          zero3 B2.z3n2_native7 b native $M7 $MB 2 "$DEV01" 150
          zero3 B2.z3n2_hf7 b hf $M7 $MB 2 "$DEV01" 150 ;;
    E)    # e) loss curve: 1 GPU vs 2 GPUs ZeRO-3 (and ZeRO-3 on 1 GPU, to tell ZeRO-3 from 2 ranks)
          rm -rf /tmp/curve_model
          [ "${CHECK:-0}" = 1 ] || timeout 120 $PY $TB save-model --dir /tmp/curve_model --tokenizer "$TOK" --preset $CPRESET \
              --overrides "$COVER" --seed 42 2>&1 | tail -2 | tee -a "$ENVLOG"
          ( run_one E.curve_single e single 1 "$DEV0" 0 110 40 0 single $C7 "${CURVE[@]}" optim.batch_size=$((2*CMB)) ) &
          ( run_one E.curve_z3n1 e zero3 1 "$DEV1" 1 120 50 0 zero3_1gpu $CZ "${CURVE[@]}" "${Z3[@]}" \
                optim.batch_size=$((2*CMB)) ) &
          wait
          run_one E.curve_z3n2 e zero3 2 "$DEV01" 2 130 50 0 zero3_2gpu $CZ "${CURVE[@]}" "${Z3[@]}" optim.batch_size=$CMB ;;
    U)    # a) Unsloth 1 GPU (GPU 1; writes the random 7B to disk first) | 13B native 1 GPU, hf and native 7B again (GPU 0)
          ( single U.single_native13 c native $M13 $MB13 "$DEV0" 150
            single U.single_hf7 a hf $M7 $MB "$DEV0" 120
            single U.single_native7 a native $M7 $MB "$DEV0" 140 ) &
          ( single U.single_unsloth7 a unsloth $M7 $MB "$DEV1" 330 ) &
          wait ;;
    S7h)  single S7.single_hf7 a hf $M7 $MB "$DEV0" 130 ;;            # the same runs as A7's GPU-0 half, one by one,
    S7n)  single S7.single_native7 a native $M7 $MB "$DEV0" 150 ;;    # for a call that shares its GPUs with other lanes
    S7f)  single S7.single_native7_flex a native $M7 $MB "$DEV0" 200 model.attn_implementation=flex_attention ;;
    S7u)  single S7.single_unsloth7 a unsloth $M7 $MB "$DEV0" 330 ;;  # writes the random 7B to disk first
    Z1n)  zero3 Z1.z3n1_native7 b native $M7 $MB 1 "$DEV0" 150 ;;
    B2n)  zero3 B2.z3n2_native7 b native $M7 $MB 2 "$DEV01" 150 ;;
    DE1)  # d) 13B offload on GPU 0 | e) the loss curve's 1-GPU and ZeRO-3 1-GPU runs on GPU 1
          ( run_one D.offload13 d zero3_offload 1 "$DEV0" 1 220 90 2 - "$CZ" "${BENCH[@]}" "${Z3[@]}" backend=hf \
                model.config=$M13 optim.batch_size=1 train.max_steps=$STO distributed.offload_params=true \
                distributed.offload_optimizer=true ) &
          ( rm -rf /tmp/curve_model
            [ "${CHECK:-0}" = 1 ] || timeout 120 $PY $TB save-model --dir /tmp/curve_model --tokenizer "$TOK" --preset $CPRESET \
                --overrides "$COVER" --seed 42 2>&1 | tail -2 | tee -a "$ENVLOG"
            run_one E.curve_single e single 1 "$DEV1" 0 110 40 0 single $C7 "${CURVE[@]}" optim.batch_size=$((2*CMB))
            run_one E.curve_z3n1 e zero3 1 "$DEV1" 1 120 50 0 zero3_1gpu $CZ "${CURVE[@]}" "${Z3[@]}" \
                optim.batch_size=$((2*CMB)) ) &
          wait ;;
    E2)   # e) the loss curve on 2 GPUs (after DE1 saved the model)
          run_one E.curve_z3n2 e zero3 2 "$DEV01" 2 130 50 0 zero3_2gpu $CZ "${CURVE[@]}" "${Z3[@]}" optim.batch_size=$CMB ;;
    C13n) zero3 C13n.z3n2_native13 c native $M13 $MB13 2 "$DEV01" 160 ;;
    C13h) zero3 C13h.z3n2_hf13 c hf $M13 $MB13 2 "$DEV01" 160 ;;
    D)    # d) 13B, parameters and optimizer offloaded to the CPU, one GPU, micro-batch 1 (the anchors' setting)
          run_one D.offload13 d zero3_offload 1 "$DEV0" 1 220 90 2 - "$CZ" "${BENCH[@]}" "${Z3[@]}" backend=hf \
              model.config=$M13 optim.batch_size=1 train.max_steps=$STO distributed.offload_params=true \
              distributed.offload_optimizer=true ;;
    *)    echo "unknown phase $p" | tee -a "$ENVLOG" ;;
  esac
done
[ "${CHECK:-0}" = 1 ] && exit 0
echo "== runs done at +$((SECONDS-START))s" | tee -a "$ENVLOG"
$PY $TB finalize --rows "$OUT/rows" --out "$OUT/train_bench.jsonl" --plot "$OUT/loss_1v2.png" 2>&1 | tee -a "$ENVLOG"
echo "== total $((SECONDS-START))s" | tee -a "$ENVLOG"
