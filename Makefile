# The two commands of the README. Both set up .venv first when needed (CPU torch only, pinned by constraints.txt).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Two cores: OpenMP's default busy-waiting slowed torch up to 10x whenever anything else ran.
export OMP_WAIT_POLICY ?= PASSIVE
# Offline by default: evalkit never reaches a model hub unless asked to.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup gate test test-wheel typecheck
setup: $(VENV)/.installed

# torch: the CPU wheel. On an ordinary index (PyPI) torch==2.13.0 is the CUDA build (several GB), so it is installed
# first with PyTorch's CPU index beside it (pip takes 2.13.0+cpu, the higher version); a machine whose pip already
# finds the CPU wheel (a find-links folder, as on this project's CI machines) may set TORCH_INDEX= to skip the index.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch
	$(PIP) -e '.[all,test]'
	touch $@

# The main job: the gate over the built-in fixture zoo, ending with its report.
gate: setup
	$(BIN)/evalkit gate $(ARGS)

# The type check (mypy, configured in pyproject.toml: strict on evalkit.core); `make test` runs it first.
typecheck: setup
	$(BIN)/python -m mypy

# The project's tests: unit tests, plugin tests and the gate's model tests on the zoo, after the type check.
test: typecheck
	$(BIN)/pytest -n auto $(ARGS)

# The wheel, installed into a fresh venv and used from a team's folder (minutes: CI runs it as its own step).
test-wheel: setup
	$(BIN)/pytest -m wheel tests/plugin/test_wheel.py -p no:cacheprovider -rA $(ARGS)
