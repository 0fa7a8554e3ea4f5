#!/usr/bin/env bash
# Ship the reviewer from what `bash bench/gpu_run.sh reviewer 540` brought back (CPU, ~10-20 min on 2 cores):
#
#   bash scripts/ship_reviewer.sh FILES_AT [RUNS_DIR] [DEST]
#
#   FILES_AT   the call's returned files (reviewer.tgz.part0, part1, ..., reviewer_manifest.txt)
#   RUNS_DIR   where the runs are unpacked (default runs/gpu-reviewer)
#   DEST       the shipped folder (default data/model/reviewer)
#
# 1. unpack the runs (<variant>-s<seed>/snapshots/step<N>/probs.pt, seed 0's last adapter, previous/, dapt/, logs/)
# 2. `contract-review eval select`: every variant and snapshot cross-fitted by document on validation, paired
#    with the previously shipped reviewer (previous/probs.pt); the chosen one's seed 0 copied to DEST, its
#    TF-IDF mix tuned on all of validation into DEST/ensemble.json, test read once (DEST/test_reads.jsonl)
# 3. scripts/reviewer_card.py: DEST/eval.json and DEST/README.md from selection.json and test.json
# 4. the adapted base (dapt/adapter, when the chosen variant is dapt-lora) into data/model/smollm2-135m-legal/,
#    where the shipped adapter's reviewer.json names it as its base
# Env: PY (default .venv/bin/python), SELECT_ARGS (more `eval select` options: --dataset, --folds, ...).
set -euo pipefail
FILES=${1:?usage: bash scripts/ship_reviewer.sh FILES_AT [RUNS_DIR] [DEST]}
RUNS=${2:-runs/gpu-reviewer}
DEST=${3:-data/model/reviewer}
PY=${PY:-.venv/bin/python}
SEL=$RUNS/select
ls "$FILES"/reviewer.tgz.part* >/dev/null || { echo "no reviewer.tgz.part* in $FILES"; exit 1; }
rm -rf "$RUNS" && mkdir -p "$RUNS"
cat "$FILES"/reviewer.tgz.part* | tar xzf - -C "$RUNS"
ls "$RUNS"
BASE=()
if [ -f "$RUNS/previous/probs.pt" ]; then
  BASE=(--baseline-probs "$RUNS/previous/probs.pt" --baseline-adapter "$RUNS/previous")
else
  echo "no previous/probs.pt: the selection is not paired with the previously shipped reviewer"
fi
# shellcheck disable=SC2086  # SELECT_ARGS are words
$PY -m contract_review.cli eval select --runs "$RUNS" "${BASE[@]}" --out "$SEL" --ship "$DEST" ${SELECT_ARGS:-}
if [ -f "$RUNS/dapt/adapter/adapted.json" ] && grep -q '/dapt/adapter"' "$DEST/reviewer.json"; then
  LEGAL=data/model/smollm2-135m-legal
  rm -rf "$LEGAL" && cp -r "$RUNS/dapt/adapter" "$LEGAL"
  cp "$RUNS/dapt/heldout_loss.json" "$LEGAL/" 2>/dev/null || true
  # the shipped reviewer names its base by the folder it ships in, not the GPU machine's run folder
  $PY - "$DEST/reviewer.json" "$LEGAL" <<'EOF'
import json, sys
path, new = sys.argv[1:]
meta = json.loads(open(path).read())
if str(meta.get("base_model", "")).endswith("/dapt/adapter"):  # the GPU machine's $OUT/runs/dapt/adapter
    meta["base_model"] = new
open(path, "w").write(json.dumps(meta, indent=2) + "\n")
print("base model:", meta["base_model"])
EOF
fi
$PY scripts/reviewer_card.py --select "$SEL" --model "$DEST" \
  --list-run "$(grep -ho 'run [0-9TZ]*-reviewer' "$RUNS"/logs/env.log 2>/dev/null | head -1 | cut -d' ' -f2)"
echo "shipped into $DEST; check: git diff --stat $DEST; pytest tests/reviewer/test_ensemble.py tests/reviewer/test_reviewer_heads.py"
