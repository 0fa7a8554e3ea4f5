#!/usr/bin/env bash
# One profiled ZeRO-3 step on one GPU (bench/lists/zero3.sh's profile part): `contract-review train --profile 1`
# of the list's ZeRO-3 row with gather GATHER; its ranked table kept as $PROF/profile_zero3_GATHER.txt, which
# gpu_run.sh gathers into the call's profiles_$RUN_ID.txt.
#   CZ=CONFIG SPEED="key=value ..." PROF=DIR bash bench/training/zero3_profile.sh GATHER
set -eu
GATHER=${1:?usage: zero3_profile.sh layer|module}
# shellcheck disable=SC2086  # SPEED is a list of overrides
python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m contract_review.cli train --config "$CZ" $SPEED \
  "distributed.gather=$GATHER" "output.dir=$PROF/zero3_$GATHER" train.progress=false train.max_steps=8 \
  --profile 1 --overwrite
cp "$PROF/zero3_$GATHER/profile/summary_rank0.txt" "$PROF/profile_zero3_$GATHER.txt"
