# The two quick-start commands (see README.md): `make run` and `make test`.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test lint browser bench clean screenshots

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("tocsin needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml integrations/litellm/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' -e 'integrations/litellm[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed  ## watch the catalog's main providers (embedded store, console, dashboard)
	$(BIN)/tocsin run

demo: $(VENV)/.installed  ## a simulated outage, update and recovery in about 30 s
	$(BIN)/tocsin demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd integrations/litellm && ../../$(BIN)/mypy tocsin_litellm
	$(BIN)/hadolint Dockerfile

# The dashboard's tests run in a real headless Chromium (driven by Playwright, which brings no
# browser of its own here): the system's package, installed when missing and we may.
browser:
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the dashboard tests need Chromium: apt-get install chromium (or set CHROMIUM=/path/to/chromium)"; \
	    exit 1; \
	  fi

screenshots: $(VENV)/.installed-test browser  ## the README's screenshots (docs/screenshots/), from the browser tests
	TOCSIN_SCREENSHOTS=1 $(BIN)/pytest -q -m browser tests/test_pages_browser.py

test: lint browser  ## lint, types, Dockerfile, then the whole suite (it starts its own redis-server)
	$(BIN)/pytest -q -n 4
	$(BIN)/pytest -q integrations/litellm/tests  # its own pyproject: one event loop, as LiteLLM wants

bench: $(VENV)/.installed-test  ## the quick benchmarks (README "Benchmarks" lists them all)
	$(BIN)/python bench/detection.py
	$(BIN)/python bench/fanout.py --repeat 1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
