# The two set-up commands (see README.md):
#   make demo   create .venv, install, train a PyTorch MLP on Iris, print importances
#   make test   create .venv, install everything, run the whole test suite
# Override TORCH to use another torch build, e.g. `make test TORCH=torch`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The CPU build the project is tested with (a plain `torch` may pull a multi-GB CUDA build).
TORCH ?= torch==2.13.0
PYTEST := $(BIN)/python -m pytest

.PHONY: demo test test-core test-keras lint format clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[torch,experiments]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[all,dev,docs]" "tensorflow-cpu>=2.16" "jax[cpu]>=0.4.30"
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/python scripts/demo.py

# Keras tests run once per backend, each in its own process (KERAS_BACKEND is read at import).
test: $(VENV)/.test-installed
	$(PYTEST) --ignore=tests/keras
	KERAS_BACKEND=tensorflow $(PYTEST) tests/keras
	KERAS_BACKEND=torch $(PYTEST) tests/keras
	KERAS_BACKEND=jax $(PYTEST) tests/keras

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check neural_feature_importance tests
	$(BIN)/mypy

format: $(VENV)/.test-installed
	$(BIN)/ruff format neural_feature_importance tests
	$(BIN)/ruff check --fix .

# The documentation site (mkdocs.yml, pages in docs/) into site/, warnings as errors.
docs: $(VENV)/.test-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache .mypy_cache
