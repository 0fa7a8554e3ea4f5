#!/usr/bin/env bash
# Runs a named list of benchmark commands on a GPU machine inside a time limit, each under its own cap.
#
#   bash bench/gpu_run.sh LIST [BUDGET_S]      LIST: bench/lists/LIST.sh, or the path of a list file
#
# The shipped lists, each sized for one GPU-machine run of under 10 minutes: kernels7b, kernels13b, memory, micro,
# tests (one GPU, lora_step / micro / the kernels' tests); train, train_unsloth, train_shipped (one GPU,
# `contract-review train` end to end); reviewer (one GPU: the shipped reviewer retrained, seeds and variants in
# parallel; scripts/ship_reviewer.sh ships the result); train_x2, curves_x2 (two GPUs: ZeRO-3 scaling, loss curves).
#
# First the project is installed (`python3 -m pip install -q --no-deps --no-build-isolation -e .`: the code imports
# as contract_review.*), and the wheels carried in .whl/ (and .whl/opt/) into /tmp/site for the optional backends
# (unsloth, liger-kernel, bitsandbytes, deepspeed and what they need: `pip download --no-deps` them here). A list
# is a bash file of entries `bench NAME CAP COMMAND...`: COMMAND runs with BENCH_NAME=NAME (its rows' name) and
# BENCH_CAP (bench/train.py's own cap) under `timeout` at CAP seconds or what is left of BUDGET_S, whichever is
# less; an entry that no longer fits is skipped. A benchmark command that leaves no row (skipped, killed at its
# cap, crashed on import) gets an error row; every entry of the list is accounted for.
#
# Results in $OUT (default /tmp/out): runs.jsonl (the call's rows, run id $RUN_ID), logs/NAME.log (the last MB of
# each entry's output), profiles_$RUN_ID.txt (the tables of lora_step's `--profile $PROF`; the traces stay in
# $PROF on the machine), tests_$RUN_ID.log (pytest entries). Back here:
#   python bench/summary.py --append FILES_AT/runs.jsonl      (adds them to bench/results/runs.jsonl, rewrites SUMMARY.md)
# Env: ONLY (entry names to run, the rest passed over), RUN_ID (default: UTC time-LIST), BENCH_COMMIT (the commit measured: the machine has no git history; pass
#      `BENCH_COMMIT=$(git rev-parse HEAD)`), INSTALL=0 (skip both installs), TOK (the tokenizer folder the
#      random-weight models use; default .gpuassets/smollm2-tok, made by bench/make_gpu_assets.sh), CAP_SCALE (every
#      entry's cap times this; 1 on the GPU, more for a list's CPU check in Triton's interpreter).
set -u
LIST=${1:?usage: bash bench/gpu_run.sh LIST [BUDGET_S]   (lists: bench/lists/*.sh)}
BUDGET=${2:-550}
START=$SECONDS
FILE=bench/lists/$LIST.sh
[ -f "$LIST" ] && FILE=$LIST && LIST=$(basename "$LIST" .sh)
[ -f "$FILE" ] || { echo "no list $FILE; lists: $(ls bench/lists | sed 's/\.sh$//' | tr '\n' ' ')"; exit 2; }
export RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-$LIST}
export OUT=${OUT:-/tmp/out} PROF=${PROF:-/tmp/bench_prof/$RUN_ID} LOGS=$(mktemp -d)
mkdir -p "$OUT/logs" "$PROF" "$LOGS"
export BENCH_RESULTS=$OUT/runs.jsonl TOK=${TOK:-.gpuassets/smollm2-tok}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       HF_HUB_DISABLE_TELEMETRY=1 UNSLOTH_STUDIO_DISABLED=1 UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_compiled_cache
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   # NVLink multicast stays off
# the random 7B/13B models Unsloth and QLoRA load from a folder are written to RAM when /dev/shm has room
SHM_GB=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
(( ${SHM_GB:-0} >= 40 )) && export CONTRACT_REVIEW_CACHE=${CONTRACT_REVIEW_CACHE:-/dev/shm/crcache}
PY=${PY:-python3}

{
  echo "run $RUN_ID list $LIST budget ${BUDGET}s commit ${BENCH_COMMIT:-unknown}"
  if [ "${INSTALL:-1}" != 0 ]; then
    $PY -m pip install -q --no-deps --no-build-isolation -e . || echo "PROJECT INSTALL FAILED"
    if ls .whl/*.whl >/dev/null 2>&1; then
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl $(ls .whl/opt/*.whl 2>/dev/null) || echo "WHEEL INSTALL FAILED"
    fi
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
  nproc; free -g | head -2
  echo "setup took $((SECONDS - START))s"
} > "$OUT/logs/env.log" 2>&1
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
cat "$OUT/logs/env.log"
MIN=${MIN:-20}   # an entry with less time than this left is skipped

bench() {  # NAME CAP COMMAND...
  local name=$1 cap=$(( $2 * ${CAP_SCALE:-1} )); shift 2
  # ONLY="NAME ...": run these entries of the list and pass over the rest (several lists' pairs in one call)
  [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]] && return
  local left=$(( BUDGET - (SECONDS - START) - 10 ))
  local t=$(( cap < left ? cap : left ))
  export BENCH_NAME=$name BENCH_CAP=$t
  local is_bench=0   # a command that writes rows (save-model prepares a run and writes none)
  [[ " $* " == *" bench/"*".py "* && " $* " != *" save-model "* ]] && is_bench=1
  if (( t < MIN )); then
    local why="skipped: ${t}s for it (its cap ${cap}s, ${left}s of the call's ${BUDGET}s left), under the ${MIN}s an entry needs"
    echo "SKIP $name: $why"
    (( is_bench )) && $PY bench/harness.py missing --why "$why" -- "$@"
    return
  fi
  echo "== $name (cap ${t}s) at +$((SECONDS - START))s"
  local t0=$SECONDS rc
  # bench/train.py stops its run at BENCH_CAP itself; the outer timeout only catches a launcher that hangs
  timeout -k 10 $(( t + 15 )) "$@" > "$LOGS/$name.log" 2>&1; rc=$?
  tail -c 1000000 "$LOGS/$name.log" > "$OUT/logs/$name.log"
  echo "   $name rc=$rc took $((SECONDS - t0))s"
  (( rc != 0 )) && grep -v -E 'FutureWarning|UserWarning|warnings.warn' "$OUT/logs/$name.log" | tail -6 | cut -c1-300
  if (( is_bench )) && ! $PY bench/harness.py has-row; then
    local why="crash"; (( rc == 124 || rc == 137 )) && why="time cap"
    $PY bench/harness.py missing --why "$name ended rc=$rc after $((SECONDS - t0))s without a row ($why; logs/$name.log)" -- "$@"
  fi
  if [[ " $* " == *" pytest "* ]]; then { echo "===== $name rc=$rc: $*"; cat "$OUT/logs/$name.log"; } >> "$OUT/tests_$RUN_ID.log"; fi
}

# shellcheck source=/dev/null
source "$FILE"

for f in "$PROF"/profile_*.txt "$PROF"/memory_*.txt; do
  [ -f "$f" ] && { echo "### ${f#"$PROF"/}"; cat "$f"; }
done > "$OUT/profiles_$RUN_ID.txt"
find "$OUT" -maxdepth 1 -type f -empty -delete
echo "== $LIST done in $((SECONDS - START))s"
$PY bench/summary.py --results "$BENCH_RESULTS" --run-id "$RUN_ID" --print
