#!/usr/bin/env bash
# One device call: the kernels test suite at full shapes, then the LoRA-step benchmark and the micro
# benchmarks, each phase under its own time cap so the call ends inside the device's 10-minute limit.
# usage (device): bash bench/kernels/gpu_run.sh "tests hf native liger micro" [budget_s]
# Results: $OUT/lora_step.jsonl, $OUT/micro.jsonl, logs in $OUT/*.log.
PHASES=${1:-"tests hf native micro"}
BUDGET=${2:-560}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
START=$SECONDS
if ls .whl/liger_kernel-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/liger_kernel-*.whl \
    && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch,triton,transformers,peft; print(torch.__version__, triton.__version__, transformers.__version__, peft.__version__)"; } 2>&1 | tee $OUT/env.log
GEMM=$(python3 bench/kernels/lora_step.py --gemm | awk '/^GEMM/{print $2}')
echo "gemm ceiling: $GEMM FLOP/s" | tee -a $OUT/env.log

phase() {  # name cap_s cmd...
  local name=$1 cap=$2; shift 2
  local left=$(( BUDGET - (SECONDS - START) - 5 ))
  local t=$(( cap < left ? cap : left ))
  if (( t < 20 )); then echo "SKIP $name (${left}s left)" | tee -a $OUT/env.log; return; fi
  echo "== $name (cap ${t}s) at +$((SECONDS-START))s" | tee -a $OUT/env.log
  local t0=$SECONDS
  timeout -k 5 $t "$@" > $OUT/$name.log 2>&1; local rc=$?
  echo "   $name rc=$rc took $((SECONDS-t0))s" | tee -a $OUT/env.log
  tail -4 $OUT/$name.log | tee -a $OUT/env.log
}
STEP="python3 bench/kernels/lora_step.py --model 7b --gemm-flops $GEMM --out $OUT/lora_step.jsonl"
for p in $PHASES; do
  case $p in
    flce)    phase flce 60 python3 -m pytest tests/kernels/test_kernel_fused_linear_cross_entropy.py -q -p no:cacheprovider --confcutdir tests/kernels ;;
    tests)   phase tests 130 python3 -m pytest tests/kernels -q -p no:cacheprovider --confcutdir tests/kernels --durations=10 ;;
    hf)      phase hf 80 $STEP --backend hf --bs ${BS:-4} ;;
    native)  phase native 80 $STEP --backend native --bs ${BS:-4} ;;
    liger)   phase liger 110 $STEP --backend liger --bs ${BS:-4} ;;
    micro)   phase micro 70 python3 bench/kernels/micro.py --out $OUT/micro.jsonl --compile-budget-s 20 ;;
  esac
done
echo "== total $((SECONDS-START))s"
python3 - "$OUT/lora_step.jsonl" <<'PY'
import json, os, sys
p = sys.argv[1]
for r in (json.loads(l) for l in open(p)) if os.path.exists(p) else []:
    if "error" in r: print(r["backend"], r.get("micro_batch"), "ERROR", r["error"][:200]); continue
    print(f"{r['backend']:8s} bs={r['micro_batch']} step={r['step_s']:.3f}s tok/s={r['tokens_per_s']:.0f} "
          f"peak={r['peak_mem_gib']:.2f}GiB mfu={r['mfu']:.3f} mfu_meas={r['mfu_measured'] or 0:.3f} loss {r['loss_first']:.3f}->{r['loss_last']:.3f}")
PY
