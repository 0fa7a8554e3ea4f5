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

.PHONY: install serve test clean label-studio

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

serve: install
	$(VENV)/bin/contract-review serve

# Label Studio lives in its own venv (.venv-ls): its pins (numpy<2.3) fight ours
label-studio: install
	$(PY) -m annotation.label_studio_cli server install

test: install label-studio
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
