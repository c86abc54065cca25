# ssld-zoo: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
# Everything installs into .venv/ (and the PaddleClas reference into .venv-paddle/).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# pytest-xdist: two workers, each test module (and its module-scoped fixtures) kept on one;
# `make test PYTEST_WORKERS=` runs in one process.
PYTEST_WORKERS ?= -n 2 --dist loadscope

.PHONY: setup demo test test-fast lint fmt paddle-env openmmlab zoo-md bench

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

# The lint gate, run first by test and test-fast: ruff (pyflakes, pycodestyle, import order;
# settings in pyproject.toml), ruff's formatter, and mypy on the public API.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Apply what ruff can fix by itself (import order, formatting); then `make lint` says the rest.
fmt: setup
	$(VENV)/bin/ruff check --fix --exit-zero .
	$(VENV)/bin/ruff format .

# The full tier (CI). Tests run on two workers (pytest-xdist): see docs/benchmarks.md.
test: setup lint paddle-env openmmlab
	$(PY) -m pytest $(PYTEST_WORKERS)

# The development tier: everything not marked @pytest.mark.slow (< 5 min).
test-fast: setup lint openmmlab
	$(PY) -m pytest -m "not slow" -q $(PYTEST_WORKERS)

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/inference_speed.py

zoo-md: setup
	$(PY) -m ssld_zoo.model_zoo_md > MODEL_ZOO.md
