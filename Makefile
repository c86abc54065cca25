# ssld-zoo: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
# Everything installs into .venv/ (and the PaddleClas reference into .venv-paddle/).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup demo test test-fast paddle-env openmmlab zoo-md bench

# Re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# PaddlePaddle 3.3.1 + PaddleClas 2.6.0, in their own venv: the reference of the parity tests.
paddle-env:
	bash tests/parity/setup_paddle_env.sh

# MMCV (built from source once, wheel cached), MMEngine, MMDetection, MMSegmentation, mim.
openmmlab: setup
	bash downstream/install_openmmlab.sh $(VENV)

# The main job: label-free SSLD on scikit-learn's bundled digits, CPU, no network.
demo: setup
	$(VENV)/bin/ssld-zoo demo

test: setup paddle-env openmmlab
	$(PY) -m pytest

# The development tier: everything but the files marked slow in tests/conftest.py (< 5 min).
test-fast: setup openmmlab
	$(PY) -m pytest -m "not slow" -q

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/inference_speed.py

zoo-md: setup
	$(PY) -m ssld_zoo.model_zoo_md > MODEL_ZOO.md
