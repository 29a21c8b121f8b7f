# `make quickstart`: set up .venv and fine-tune the embedded default model on this repository.
# `make test`: set up .venv and run the linter and the test-suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

quickstart: $(VENV)/.installed
	$(BIN)/repotune run . --out runs/quickstart -c configs/quickstart.yaml

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs
