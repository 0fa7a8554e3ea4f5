#!/usr/bin/env bash
# One device call on a two-GPU machine, with the single-GPU benchmarks run as two lanes side by side
# (one per GPU; each lane's comparisons are measured on its own GPU, one after the other) and the
# two-GPU runs after them. Used because a session has 30 minutes of device time for everything.
#
# usage (device, repo root; carry .whl and .gpuassets; make .gpuassets here first with bench/make_gpu_assets.sh).
# .whl/ holds the Python 3.12 x86-64 wheels the GPU image lacks, fetched here with `pip download --no-deps`:
# unsloth==2026.10.9 unsloth_zoo==2026.10.9 trl==1.15.0 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19
# cut_cross_entropy==25.1.1 bitsandbytes==0.50.2 liger_kernel==0.8.5 deepspeed==0.19.8 hjson pydantic
# pydantic_core annotated_types typing_inspection gguf pypdf python-docx fpdf2 defusedxml, and
# fsspec==2026.2.0 in .whl/opt/ (datasets needs fsspec <= 2026.2.0; the image's is newer):
#   bash bench/gpu_call.sh call1     # GPU 0: kernels 7B (native, hf, unsloth, legal config), app 7B, train native 7B
#                                    # GPU 1: kernels 13B (native, unsloth), Mistral-7B in 24 GB, 13B QLoRA in 24 GB, train hf 7B
#   bash bench/gpu_call.sh call2     # training: 13B offload | loss curves, ZeRO-3 7B on 2 GPUs, loss curve on 2 GPUs, ZeRO-3 13B
#   bash bench/gpu_call.sh profile   # one profiled step each: native 7B mb4 (+offload) | native and Unsloth 13B mb1
#   bash bench/gpu_call.sh compare   # profiled, same run: native/Unsloth 7B mb4 and legal config | native/Unsloth/hf 13B mb1
#   bash bench/gpu_call.sh recheck   # after a kernels change: native/Unsloth 7B mb4 + GPU kernel tests | 13B mb1
#   bash bench/gpu_call.sh graph     # CUDA-graphed steps: graph tests, native/graph/offload+graph/Unsloth 7B mb4 and legal
#                                    # (GPU 0) | the same at 13B mb1 (GPU 1); each lane pinned to half the CPUs
#   bash bench/gpu_call.sh graph2    # the same with SDPA held to flash/efficient, lanes not pinned
#   bash bench/gpu_call.sh graph3    # after the capture-time causal-mask fix: cuDNN and flash inside the graph
#   bash bench/gpu_call.sh graph4    # unpacked rows keep the causal path in the capture (the figures in kernels/NOTES.md)
#   bash bench/gpu_call.sh solo7     # one-GPU machine (nvidia-h200), nothing beside it: graph tests, 7B mb4 trimmed
#                                    # recompute (eager, graph, graph+offload), its full-recompute ablation, Unsloth, legal
#   bash bench/gpu_call.sh solo13    # one-GPU machine, nothing beside it: the same at 13B mb1, then an eager 7B step
#                                    # profiled with each kernel's launching ops, and the kernels' GPU tests
#   bash bench/gpu_call.sh final     # one-GPU machine: after the embedding-grad skip and the RoPE on projection outputs,
#                                    # 7B mb4 (graph, graph+offload), legal, 13B mb1, each against Unsloth in the same run
#   bash bench/gpu_call.sh final2    # after its CheckpointError was fixed: 7B mb4 against Unsloth, 13B mb1 with offload, tests
#   bash bench/gpu_call.sh stash     # one-GPU machine: MLP gate/up outputs in host memory (offload_mlp) at 7B and 13B
#                                    # against graph+offload and Unsloth in the same run, then the changed GPU tests
#   bash bench/gpu_call.sh stash2    # the same after the host-pool and held-until-copied fixes, with the legal config
#   bash bench/gpu_call.sh tail      # one-GPU machine: where the graphed 7B step idles (timeline), the backward's
#                                    # start without copies out and straight back in, the changed GPU tests
#   bash bench/gpu_call.sh call3     # training: Unsloth 7B on GPU 0 | ZeRO-3 7B on 1 GPU, then native 7B again, on GPU 1
# Everything comes back as at most 8 files: rows (*.jsonl), app JSON, the loss plot, summaries and one
# tarball of the logs.
set -u
CALL=${1:?call1 or call2}
LIMIT=${2:-555}   # seconds for the whole call; every lane and phase is capped inside it
export RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)-$CALL}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
W=/tmp/lanes; rm -rf "$W"; mkdir -p "$W"
T0=$SECONDS
left() { echo $(( LIMIT - (SECONDS - T0) - ${1:-0} )); }

# the wheels once, before the lanes (two pip runs into one --target folder would race)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl $(ls .whl/opt/*.whl 2>/dev/null) > "$W/pip.log" 2>&1 || echo "PIP INSTALL FAILED" | tee -a "$W/pip.log"
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
mv .whl .whl.installed   # the lane scripts see no wheels and use /tmp/site as it is
trap 'mv .whl.installed .whl 2>/dev/null' EXIT
echo "wheels installed in $((SECONDS - T0))s"

lane() {  # name gpu commands... (run in a subshell, output in $W/name.log)
  local name=$1 gpu=$2; shift 2
  ( export CUDA_VISIBLE_DEVICES=$gpu DEV0=$gpu DEV1=$gpu UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_cache_$name
    # PIN=1: each lane on its own half of the CPUs (a host-bound step must not share cores with the other
    # lane's work: the recheck call's 13B figure moved with its neighbour's Unsloth compile)
    if [ -n "${PIN:-}" ] && command -v taskset >/dev/null; then
      local n=$(nproc) ; local h=$(( n / 2 ))
      taskset -pc "$(( gpu * h ))-$(( gpu * h + h - 1 ))" $BASHPID >/dev/null && echo "lane $name on CPUs $(( gpu * h ))-$(( gpu * h + h - 1 ))"
    fi
    for step in "$@"; do eval "$step"; done ) > "$W/$name.log" 2>&1
}

kernel_lane() {  # GPU "PHASES": the kernels bench, profiled, as the lane of that GPU (rows in $W/k<GPU>)
  lane gpu$1 $1 "PROFILE=1 OUT=\$W/k$1 bash bench/kernels/gpu_run.sh \"$2\" \$(left 15)"
}

kernel_lanes() {  # "PHASES on GPU 0" "PHASES on GPU 1": one kernels lane per GPU, side by side
  kernel_lane 0 "$1" &
  kernel_lane 1 "$2" &
  wait
}

case $CALL in
  call1)
    lane gpu0 0 \
      'OUT=$W/k0 bash bench/kernels/gpu_run.sh "native7 hf7 unsloth7 legal_native legal_hf" 300' \
      'OUT=$W/a0 TOKENIZER=.gpuassets/smollm2-tok CAP_BUILD=120 CAP_RUN=$(( $(left 170) < 120 ? $(left 170) : 120 )) bash bench/app/gpu_run.sh' \
      'OUT=$W/t0 bash bench/training/gpu_run.sh S7n $(left 10)' &
    lane gpu1 1 \
      'OUT=$W/k1 bash bench/kernels/gpu_run.sh "native13 unsloth13 mistral24 qlora13" 340' \
      'OUT=$W/t1 bash bench/training/gpu_run.sh S7h $(left 10)' &
    wait ;;
  call3)   # what call1/call2 left: Unsloth through `train` (GPU 0) | ZeRO-3 7B on one GPU (GPU 1)
    lane gpu0 0 'OUT=$W/t0 bash bench/training/gpu_run.sh S7u $(left 10)' &
    lane gpu1 1 'OUT=$W/t1 bash bench/training/gpu_run.sh "Z1n S7n" $(left 10)' &
    wait ;;
  call4)   # packing by position_ids (no dense mask from the host): SDPA (GPU 0) | flex_attention (GPU 1)
    lane gpu0 0 'OUT=$W/t0 bash bench/training/gpu_run.sh S7n $(left 10)' &
    lane gpu1 1 'OUT=$W/t1 bash bench/training/gpu_run.sh S7f $(left 10)' &
    wait ;;
  profile) # where a step's GPU time goes: ours at 7B mb4 (GPU 0) | ours and Unsloth at 13B mb1 (GPU 1)
    kernel_lanes "native7 native7off" "native13 unsloth13" ;;
  compare) # ours against Unsloth in one run, profiled: 7B mb4 and the legal config (GPU 0) | 13B mb1 (GPU 1)
    kernel_lanes "native7 unsloth7 legal_native legal_unsloth" "native13 unsloth13 hf13 native13off" ;;
  graph)   # the CUDA-graphed step against eager and Unsloth, same run, lanes pinned to their own CPUs
    PIN=1 kernel_lanes "tests_graph native7 native7g native7offg unsloth7 legal_native_g" \
                       "native13 native13g native13offg unsloth13" ;;
  graph2)  # SDPA held to flash/efficient inside the graph; lanes not pinned (pinning slowed Unsloth's 13B step
           # from 0.339 to 0.418 s in the graph call), the GPU tests of the graph first
    kernel_lanes "tests_graph native7 native7f native7gf native7ge native7offgf unsloth7 legal_native_gf" \
                 "native13 native13gf native13offgf native13g unsloth13" ;;
  graph3)  # after the capture-time causal-mask fix: graphed steps with cuDNN and flash attention, lanes not pinned
    kernel_lanes "tests_graph native7 native7g native7gf native7offg native7offgf unsloth7 legal_native_g" \
                 "native13 native13g native13gf native13offg native13offgf unsloth13" ;;
  graph4)  # unpacked rows keep SDPA's causal path inside the capture: cuDNN and flash, offload, Unsloth, same run
    kernel_lanes "tests_graph native7 native7g native7gf native7offg unsloth7 legal_native_g" \
                 "native13 native13g native13gf native13offg unsloth13" ;;
  solo7)   # 7B on a one-GPU machine (no second lane sharing the host): the trimmed recompute and its ablation
    kernel_lane 0 "tests_graph native7 native7g native7gfull native7offg unsloth7 legal_native_g" ;;
  solo13)  # 13B mb1 alone on the machine: Unsloth's host-sensitive 13B step moved with the other lane's work
    kernel_lane 0 "native13 native13g native13gfull native13offg unsloth13 native7 tests" ;;
  final)   # one-GPU machine: 7B mb4, the legal config and 13B mb1 against Unsloth in one run, then the changed GPU tests
    kernel_lane 0 "native7g native7offg unsloth7 legal_native_g native13g native13offg unsloth13 tests_changed" ;;
  final2)  # the final call's native rows again after the embedding-grad fix, with Unsloth 7B in the same run
    kernel_lane 0 "native7g native7offg unsloth7 native13offg tests_changed" ;;
  stash)   # one-GPU machine: the gate/up stash (offload_mlp 0.5, 0.67) against graph+offload and Unsloth at 7B mb4,
           # 13B mb1 with and without it (and its memory after the embedding change), then the changed GPU tests
    kernel_lane 0 "native7offg native7offgm5 native7gm5 native7offgm67 unsloth7 native13offg native13offgm5 tests_stash" ;;
  stash2)  # after the pool fix (two buffer sizes) and the offloaded tensors held until copied (no record_stream,
           # whose blocks a capture cannot reuse): the same rows, 0.67 too, the legal config, the GPU tests
    kernel_lane 0 "native7offg native7offgm5 native7offgm67 unsloth7 legal_native_g native13offg native13offgm5 tests_stash" ;;
  tail)    # session 7: the backward's first recompute no longer waits behind a stash's copy; the last layer's
           # input and the last layers' gate/up outputs kept on the GPU; each step profiled with its idle gaps
    kernel_lane 0 "native7offgm5 native7offgm5ki native7offgm5k1 native7offgm5k2 tests_tail" ;;
  tail2|tail3)  # where the memory peaks (tail2 recorded the allocator's history: every native row failed on torch
           # 2.11's issue #179536; tail3 measures each stretch of one eager step), 1-2 layers kept, Unsloth in the
           # same run. Both calls also ran k2r and k3r (the pending copies let go before the loss, removed since:
           # no faster, and the peak is in the backward)
    export MEMPEAK=1; kernel_lane 0 "native7offgm5k1 native7offgm5k2 unsloth7" ;;
  qkv)     # q, k and v in one node, against its ablation and Unsloth in the same run, 7B mb4 (k1: the last layer's
           # input and gate/up outputs kept on the GPU), the legal config, 13B mb1, then the changed GPU tests
    kernel_lane 0 "native7offgm5k1 native7offgm5k1q3 unsloth7 legal_native_g native13offg unsloth13 tests_qkv" ;;
  final7)  # session 7's last call: the defaults (k1, q/k/v node, gate/up x A^T and dA as one GEMM each, h A_d^T
           # kept for the trimmed recompute) against Unsloth at 7B mb4 in the same run, 13B mb1, the GPU tests
    kernel_lane 0 "native7offgm5k1 unsloth7 tests_qkv native13offg" ;;
  recheck) # after a kernels change: ours and Unsloth again, same run, profiled, and the kernels' GPU tests
    kernel_lanes "native7 unsloth7 tests" "native13 unsloth13" ;;
  call2)
    ( OUT=$W/t bash bench/training/gpu_run.sh "DE1 B2n E2 C13n" $(left 10) ) > "$W/train.log" 2>&1 ;;
  *) echo "unknown call $CALL"; exit 2 ;;
esac

# gather: rows, app JSON, plot, the summaries, and everything else in one tarball
cat "$W"/k*/lora_step.jsonl > "$OUT/lora_step.jsonl" 2>/dev/null
cat "$W"/t*/train_bench.jsonl > "$OUT/train_bench.jsonl" 2>/dev/null
cat "$W"/k*/micro.jsonl > "$OUT/micro.jsonl" 2>/dev/null
cp "$W"/a0/app_review_7b.json "$OUT/" 2>/dev/null
cp "$W"/t/loss_1v2.png "$OUT/" 2>/dev/null
for f in "$W"/*.log; do echo "=== $f"; tail -40 "$f"; done > "$OUT/lanes_tail.txt"
cat "$W"/k*/summary.txt > "$OUT/summary.txt" 2>/dev/null
for f in "$W"/k*/prof/profile_*.txt "$W"/k*/prof/memory_*.txt; do [ -f "$f" ] && { echo "### ${f#$W/}"; cat "$f"; }; done > "$OUT/profiles.txt"
tar czf "$OUT/logs.tgz" -C "$W" . 2>/dev/null
find "$OUT" -maxdepth 1 -type f -empty -delete
echo "call $CALL done in $((SECONDS - T0))s"; cat "$OUT/summary.txt" 2>/dev/null
for f in "$W"/*.log; do echo "== $f"; tail -n 25 "$f"; done
