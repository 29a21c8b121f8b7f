# `make quickstart`: set up .venv and fine-tune the embedded default model on this repository.
# `make test`: set up .venv and run the linter and the test-suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test lint clean chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

quickstart: $(VENV)/.installed
	$(BIN)/repotune run . --out runs/quickstart -c configs/quickstart.yaml

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench

# The report's browser test opens report.html in Debian's headless Chromium.
chromium:
	@test -x /usr/bin/chromium || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: lint chromium
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs
