# `make quickstart`: set up .venv and fine-tune the embedded default model on this repository.
# `make test`: set up .venv and run the linter and the test-suite.
# `make lock`: re-resolve requirements.lock from pyproject.toml (see README.md).
# `make llamacpp-check`: compile llama.cpp (llama-cpp-python) and run exported GGUFs in it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
# e.g. `make lock LOCK_FLAGS=--upgrade`, or LOCK_FLAGS="--upgrade-package typer"
LOCK_FLAGS ?=

.PHONY: quickstart test lint clean chromium lock llamacpp-check

# Every package at the version requirements.lock pins, the versions the tests passed with:
# a fresh machine gets no newer release than they did. torch==2.13.0 there is met by the CPU
# build of that release where the machine has its file.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) -e ".[dev]"
	touch $@

# For Python 3.11 on linux x86_64, whatever machine runs it. uv keeps every pin that still fits
# pyproject.toml; uv alone is installed first, so a pyproject.toml the old lock no longer fits
# still gets resolved.
lock:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) uv
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
		$(LOCK_FLAGS) -o $(LOCK)

quickstart: $(VENV)/.installed
	$(BIN)/repotune run . --out runs/quickstart -c configs/quickstart.yaml

# lint-imports: the layering contract in pyproject.toml (stages never import each other).
lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

# The report's browser test opens report.html in Debian's headless Chromium.
chromium:
	@test -x /usr/bin/chromium || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: lint chromium
	$(BIN)/pytest -q

# llama-cpp-python ships only as source on PyPI: pip compiles llama.cpp (cmake and a C++
# compiler; ≈7 min on 2 cores). Kept out of `make test` and CI, whose llama.cpp tests skip.
llamacpp-check: $(VENV)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -c $(LOCK) -e ".[dev,llamacpp]"
	$(BIN)/pytest -q -m llamacpp tests/train/test_gguf_llamacpp.py

clean:
	rm -rf $(VENV) runs
