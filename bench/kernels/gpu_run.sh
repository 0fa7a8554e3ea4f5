#!/usr/bin/env bash
# One device call: LoRA-step rows for our kernels (native) against transformers+peft (hf) and Unsloth in
# the same run, the micro benchmarks and the kernels test suite, each phase under its own time cap so the
# call ends inside the device's 10-minute limit; a phase that fails or is cut off leaves an error row.
# usage (device, repo root): bash bench/kernels/gpu_run.sh "PHASES" [budget_s]
#   CALL A: "native7 hf7 unsloth7 legal_native legal_hf legal_unsloth native7off"
#   CALL B: "native13 hf13 unsloth13 mistral24 qlora13 micro"
# Wheels (carry .whl): unsloth, unsloth_zoo, trl, datasets, dill, multiprocess, cut_cross_entropy,
# bitsandbytes and liger_kernel from .whl/ (those present), and .whl/opt/fsspec-*.whl when the image's
# fsspec is newer than datasets allows, are installed into /tmp/site first (PYTHONPATH).
# Results: $OUT/lora_step.jsonl, $OUT/micro.jsonl; logs: $OUT/env.log (phase timings), $OUT/phases.log
# (every phase's output), $OUT/summary.txt (at most 8 files come back from $OUT).
# Env: RUN_ID (shared by all rows of the call), MEMCAP (GiB for the capped phases, default 24), BS,
# PROFILE=1 (each lora_step phase also profiles one step: $OUT/prof/profile_*.txt, kernels ranked by time).
PHASES=${1:-"tests hf native micro"}
BUDGET=${2:-560}
START=$SECONDS
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       HF_HUB_DISABLE_TELEMETRY=1 UNSLOTH_STUDIO_DISABLED=1 UNSLOTH_COMPILE_LOCATION=${UNSLOTH_COMPILE_LOCATION:-/tmp/unsloth_compiled_cache}
export RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
MEMCAP=${MEMCAP:-24}
SITE=${SITE:-/tmp/site}  # the wheels are installed here (PYTHONPATH)
RES=$OUT/lora_step.jsonl
PLOG=$OUT/phases.log
ENVLOG=$OUT/env.log

{
  echo "run $RUN_ID phases: $PHASES budget ${BUDGET}s"
  # only the wheels these backends need (.whl/ is shared with other work: deepspeed, pydantic, ...);
  # a missing one is skipped, and its backend writes an error row
  WHEELS=""
  for w in unsloth unsloth_zoo trl datasets dill multiprocess cut_cross_entropy bitsandbytes liger_kernel; do
    f=$(ls .whl/${w}-[0-9]*.whl 2>/dev/null | tail -1)
    if [ -n "$f" ]; then WHEELS="$WHEELS $f"; else echo "wheel $w: not in .whl/, skipped"; fi
  done
  if [ -n "$WHEELS" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $WHEELS \
      || echo "PIP INSTALL FAILED"
  fi
  if ls .whl/opt/fsspec-*.whl >/dev/null 2>&1 && ! python3 -c "import fsspec,sys; from packaging.version import Version as V; sys.exit(0 if V(fsspec.__version__)<=V('2026.2.0') else 1)"; then
    echo "image fsspec > 2026.2.0 (datasets needs <= 2026.2.0): installing .whl/opt/fsspec into $SITE"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/opt/fsspec-*.whl \
      || echo "PIP INSTALL (fsspec) FAILED"
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  df -h /tmp | tail -1; nproc; free -g | head -2
} > "$ENVLOG" 2>&1
[ -d "$SITE" ] && export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
python3 - >> "$ENVLOG" 2>&1 <<'PY'
import importlib.metadata as m
names = ["torch", "transformers", "peft", "accelerate", "triton", "tokenizers", "safetensors", "unsloth", "unsloth_zoo",
         "trl", "datasets", "fsspec", "bitsandbytes", "liger_kernel", "cut_cross_entropy"]
def v(n):
    try:
        return m.version(n)
    except m.PackageNotFoundError:
        return "-"
print("  " + " ".join(f"{n}=={v(n)}" for n in names))
import torch; print("  cuda", torch.version.cuda, torch.cuda.get_device_name())
PY
GEMM=$(timeout -k 5 90 python3 bench/kernels/lora_step.py --gemm 2>>"$ENVLOG" | awk '/^GEMM/{print $2}')
echo "gemm ceiling: ${GEMM:-not measured} FLOP/s; setup took $((SECONDS-START))s" >> "$ENVLOG"
cat "$ENVLOG"

# lora_step rows missing for a phase (process killed before it could write them, crash at import):
# one error row per micro-batch the phase asked for, so every requested row exists
fill_rows() {  # name rc secs cmd...
  python3 - "$RES" "$@" <<'PY' 2>&1 | tail -3
import json, os, sys
res, name, rc, secs, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
sys.path.insert(0, "bench/kernels")
import lora_step
args = lora_step.parse_args([a for a in cmd[cmd.index("bench/kernels/lora_step.py") + 1:]])
rows = [json.loads(l) for l in open(res)] if os.path.exists(res) else []
mine = [r for r in rows if r.get("phase") == name and r.get("run_id") == os.environ["RUN_ID"]]
if any(r.get("micro_batch") is None for r in mine):
    sys.exit(0)  # a setup error row already speaks for the phase
seen = {r.get("micro_batch") for r in mine}
for bs in args.bs:
    if bs in seen:
        continue
    row = dict(backend=args.backend, model=args.model, micro_batch=bs, seq_len=args.seq, lora_r=args.r,
               lora_alpha=args.alpha, targets=args.targets, qlora=args.qlora, mem_cap_gib=args.mem_cap_gib,
               offload_activations=args.offload_activations, card=os.environ.get("CARD"), gpus=1,
               run_id=os.environ["RUN_ID"], phase=name, versions=None, tokens_per_s=None, peak_mem_gib=None, mfu=None,
               command=" ".join(cmd[1:]),
               error=(f"phase {name} not run: the call's time budget was spent" if rc == "skipped" else
                      f"phase {name} ended rc={rc} after {secs}s without this row "
                      f"({'time cap' if rc in ('124', '137') else 'crash'}; see phases.log)"))
    if args.mem_cap_gib:
        row["fits_cap"] = False
    with open(res, "a") as f:
        f.write(json.dumps(row) + "\n")
    print("filled", name, bs, row["error"])
PY
}

phase() {  # name cap_s min_s cmd...   (skipped when less than min_s is left)
  local name=$1 cap=$2 min=$3; shift 3
  local left=$(( BUDGET - (SECONDS - START) - 5 ))
  local t=$(( cap < left ? cap : left ))
  if (( t < min || t < 20 )); then
    echo "SKIP $name (${left}s left, needs ${min}s)" | tee -a "$ENVLOG"
    [[ " $* " == *" bench/kernels/lora_step.py "* ]] && fill_rows "$name" skipped 0 "$@"
    return
  fi
  echo "== $name (cap ${t}s) at +$((SECONDS-START))s" | tee -a "$ENVLOG"
  local t0=$SECONDS log=/tmp/phase_$name.log
  PHASE=$name timeout -k 5 "$t" "$@" > "$log" 2>&1; local rc=$?
  local dt=$((SECONDS-t0))
  echo "   $name rc=$rc took ${dt}s" | tee -a "$ENVLOG"
  { echo "===== $name rc=$rc ${dt}s: $*"; tail -c 400000 "$log"; } >> "$PLOG"
  if (( rc != 0 )); then tail -15 "$log" | cut -c1-300; fi
  if [[ " $* " == *" bench/kernels/lora_step.py "* ]]; then
    fill_rows "$name" "$rc" "$dt" "$@"
    python3 bench/kernels/lora_step.py --summary "$RES" --run-id "$RUN_ID" | grep "^$name " | sed 's/^/   /'
  fi
  rm -f "$log"
}

export CARD=$(python3 -c "import torch; print(torch.cuda.get_device_name())" 2>/dev/null)
STEP="python3 bench/kernels/lora_step.py ${GEMM:+--gemm-flops $GEMM} ${PROFILE:+--profile $OUT/prof} ${MEMPEAK:+--memory-peak} --out $RES"
LEGAL="--model 7b --bs 4 --r 32 --alpha 64 --targets q_proj,o_proj"
for p in $PHASES; do
  case $p in
    # the anchor workload, 7B, micro-batch 4 (r=16, alpha=32, all seven projections)
    native7)       phase native7 90 40 $STEP --backend native --model 7b --bs ${BS:-4} ;;
    hf7)           phase hf7 80 35 $STEP --backend hf --model 7b --bs ${BS:-4} ;;
    native7off)    phase native7off 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations ;;
    # forward + backward replayed as a CUDA graph (kernels/cuda_graph.py), with and without offload
    native7g)      phase native7g 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --cuda-graph ;;
    native7offg)   phase native7offg 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph ;;
    # the ablation of the trimmed recompute (kernels.patch(trim_recompute=False)), graphed like native7g
    # the gate/up outputs of every other layer (0.67: two layers in three) in host memory, their recompute skipped
    native7offgm5) phase native7offgm5 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --offload-mlp 0.5 --stash-keep 0 --no-keep-last-input ;;
    native7offgm67) phase native7offgm67 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --offload-mlp 0.67 ;;
    # the backward's start: the last layer's input kept on the GPU (ki), and the last 1 or 2 layers' gate/up
    # outputs kept there too (k1, k2), instead of a copy out at the forward's end and straight back in; k1 is
    # kernels' default since session 7 (native7offgm5 spells out the earlier one)
    native7offgm5ki) phase native7offgm5ki 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --offload-mlp 0.5 --stash-keep 0 --keep-last-input ;;
    native7offgm5k1) phase native7offgm5k1 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --offload-mlp 0.5 --keep-last-input --stash-keep 1 ;;
    native7offgm5k2) phase native7offgm5k2 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --offload-mlp 0.5 --keep-last-input --stash-keep 2 ;;
    # q, k and v as one node (patch(fuse_qkv=True), the default since session 7) and its ablation
    native7offgm5k1q3) phase native7offgm5k1q3 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --offload-mlp 0.5 --keep-last-input --stash-keep 1 --no-fuse-qkv ;;
    native13offgq3) phase native13offgq3 90 40 $STEP --backend native --model 13b --bs 1 --offload-activations --cuda-graph --no-fuse-qkv ;;
    native7gm5)    phase native7gm5 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --cuda-graph --offload-mlp 0.5 ;;
    native7gfull)  phase native7gfull 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --cuda-graph --full-recompute ;;
    # the same with SDPA held to one backend (cuDNN's attention ran 3x slower inside the graph, run 20261128T164850Z-graph)
    native7f)      phase native7f 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --sdpa flash ;;
    native7gf)     phase native7gf 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --cuda-graph --sdpa flash ;;
    native7ge)     phase native7ge 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --cuda-graph --sdpa efficient ;;
    native7offgf)  phase native7offgf 90 40 $STEP --backend native --model 7b --bs ${BS:-4} --offload-activations --cuda-graph --sdpa flash ;;
    unsloth7)      phase unsloth7 240 120 $STEP --backend unsloth --model 7b --bs ${BS:-4} ;;
    # 13B, micro-batch 1
    native13)      phase native13 90 40 $STEP --backend native --model 13b --bs 1 ;;
    hf13)          phase hf13 80 35 $STEP --backend hf --model 13b --bs 1 ;;
    native13off)   phase native13off 90 40 $STEP --backend native --model 13b --bs 1 --offload-activations ;;
    native13g)     phase native13g 90 40 $STEP --backend native --model 13b --bs 1 --cuda-graph ;;
    native13offg)  phase native13offg 90 40 $STEP --backend native --model 13b --bs 1 --offload-activations --cuda-graph ;;
    native13offgm5) phase native13offgm5 90 40 $STEP --backend native --model 13b --bs 1 --offload-activations --cuda-graph --offload-mlp 0.5 ;;
    native13gfull) phase native13gfull 90 40 $STEP --backend native --model 13b --bs 1 --cuda-graph --full-recompute ;;
    native13gf)    phase native13gf 90 40 $STEP --backend native --model 13b --bs 1 --cuda-graph --sdpa flash ;;
    native13offgf) phase native13offgf 90 40 $STEP --backend native --model 13b --bs 1 --offload-activations --cuda-graph --sdpa flash ;;
    unsloth13)     phase unsloth13 270 150 $STEP --backend unsloth --model 13b --bs 1 ;;
    # the legal configuration: r=32, alpha=64 on q_proj,o_proj, 7B micro-batch 4
    legal_native)  phase legal_native 80 35 $STEP --backend native $LEGAL ;;
    legal_native_g) phase legal_native_g 80 35 $STEP --backend native $LEGAL --cuda-graph ;;
    legal_native_gf) phase legal_native_gf 80 35 $STEP --backend native $LEGAL --cuda-graph --sdpa flash ;;
    legal_hf)      phase legal_hf 80 30 $STEP --backend hf $LEGAL ;;
    legal_unsloth) phase legal_unsloth 200 90 $STEP --backend unsloth $LEGAL ;;
    # memory: Mistral-7B shape (GQA) under a MEMCAP GiB allocator cap, micro-batch 2 and 4
    mistral24)     phase mistral24_native 90 40 $STEP --backend native --model mistral7b --bs 2,4 --mem-cap-gib $MEMCAP
                   phase mistral24_hf 90 40 $STEP --backend hf --model mistral7b --bs 2,4 --mem-cap-gib $MEMCAP ;;
    # Llama-2-13B QLoRA (NF4, double quant, bf16 compute) under the cap
    qlora13)       phase qlora13 130 60 $STEP --backend native --model 13b --qlora --bs 1,2 --mem-cap-gib $MEMCAP ;;
    qlora13_hf)    phase qlora13_hf 130 60 $STEP --backend hf --model 13b --qlora --bs 1,2 --mem-cap-gib $MEMCAP ;;
    qlora13_unsloth) phase qlora13_unsloth 270 150 $STEP --backend unsloth --model 13b --qlora --bs 1,2 --mem-cap-gib $MEMCAP ;;
    # earlier names, kept
    hf)            phase hf 80 35 $STEP --backend hf --model 7b --bs ${BS:-4} ;;
    native)        phase native 80 35 $STEP --backend native --model 7b --bs ${BS:-4} ;;
    liger)         phase liger 110 40 $STEP --backend liger --model 7b --bs ${BS:-4} ;;
    micro)         phase micro 80 40 python3 bench/kernels/micro.py --out $OUT/micro.jsonl --compile-budget-s 25 \
                     --ops rope,rms_norm,swiglu,fused_linear_cross_entropy,lora_linear,lora_mlp ;;
    flce)          phase flce 60 30 python3 -m pytest tests/kernels/test_kernel_fused_linear_cross_entropy.py -q -p no:cacheprovider --confcutdir tests/kernels ;;
    tests_graph)   phase tests_graph 100 40 python3 -m pytest tests/kernels/test_kernel_cuda_graph.py tests/kernels/test_kernel_patch.py tests/kernels/test_kernel_offload.py -q -p no:cacheprovider --confcutdir tests/kernels -x ;;
    # the GPU tests of what sessions 4-5 changed (rope, patch, the graph, offload; the ZeRO-3 offload test runs
    # on CPU in Triton's interpreter, which fails in the GPU image, run 20261128T183625Z-solo7)
    tests_changed) phase tests_changed 120 60 python3 -m pytest tests/kernels/test_kernel_rope.py tests/kernels/test_kernel_patch.py tests/kernels/test_kernel_cuda_graph.py tests/kernels/test_kernel_offload.py -q -k "not zero3" -p no:cacheprovider --confcutdir tests/kernels ;;
    tests_stash)   phase tests_stash 150 60 python3 -m pytest tests/kernels/test_kernel_mlp_stash.py tests/kernels/test_kernel_cuda_graph.py tests/kernels/test_kernel_rope.py tests/kernels/test_kernel_patch.py tests/kernels/test_kernel_offload.py -q -k "not zero3" -p no:cacheprovider --confcutdir tests/kernels ;;
    tests_tail)    phase tests_tail 120 50 python3 -m pytest tests/kernels/test_kernel_mlp_stash.py tests/kernels/test_kernel_offload.py -q -k "not zero3" -p no:cacheprovider --confcutdir tests/kernels ;;
    tests_qkv)     phase tests_qkv 150 50 python3 -m pytest tests/kernels/test_kernel_lora.py tests/kernels/test_kernel_patch.py tests/kernels/test_kernel_mlp_stash.py tests/kernels/test_kernel_offload.py tests/kernels/test_kernel_cuda_graph.py -q -k "not zero3" -p no:cacheprovider --confcutdir tests/kernels ;;
    tests)         phase tests 130 60 python3 -m pytest tests/kernels -q -p no:cacheprovider --confcutdir tests/kernels --durations=10 ;;
    *)             echo "unknown phase $p" | tee -a "$ENVLOG" ;;
  esac
done
echo "== total $((SECONDS-START))s" | tee -a "$ENVLOG"
python3 bench/kernels/lora_step.py --summary "$RES" --run-id "$RUN_ID" 2>&1 | tee "$OUT/summary.txt"
