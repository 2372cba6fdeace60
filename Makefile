# Two commands do all set-up on a fresh machine:
#   make demo   install, then run the main job on the embedded digits dataset
#   make test   install, then run the test suite
# torch is pinned and installed first (CPU wheel) so nothing can resolve a CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0

.PHONY: install demo test test-all clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[all,dev]' $(TORCH)
	touch $@

demo: install
	$(VENV)/bin/torchship quickstart

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) torchship-quickstart .pytest_cache
