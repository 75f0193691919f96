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

.PHONY: setup gate test typecheck
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[all,test]'
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
