# The README's commands live here. Both work on a fresh clone of a bare Debian machine:
# Python packages go into .venv, Debian packages (chromium, firefox-esr, webkit2gtk-driver, xvfb,
# redis-server, wrk) come from apt-get only when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser suite's three engines: WebKitWebDriver drives WebKitGTK's MiniBrowser (in
# libwebkit2gtk, a dependency of webkit2gtk-driver) on an Xvfb display.
DEBIAN_PACKAGES := chromium:chromium firefox-esr:firefox-esr WebKitWebDriver:webkit2gtk-driver \
	Xvfb:xvfb redis-server:redis-server wrk:wrk
HOST ?= 127.0.0.1
PORT ?= 8000
DOCS_PORT ?= 8001

.PHONY: install system-deps demo test lint typecheck pytest bench docs docs-serve dist clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Each entry is command:package; a package is installed only when its command is missing.
system-deps:
	@missing=""; for pair in $(DEBIAN_PACKAGES); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(BIN)/python -m examples.demo --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check corsengine tests benchmarks examples
	$(BIN)/ruff format --check corsengine tests benchmarks examples

typecheck: install
	$(BIN)/mypy --strict corsengine

# coverage starts before pytest so that the package imported by our own pytest plugin
# (an entry point, loaded before any pytest-cov hook) is measured from its first line.
pytest: install system-deps
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -p no:cacheprovider $(PYTEST_ARGS)
	$(BIN)/coverage report --fail-under=95

# The docs site, with --strict: a broken link, anchor or API reference is an error.
# (Not --quiet: it hides the warnings that --strict counts, and the build passes.)
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr $(HOST):$(DOCS_PORT)

# The wheel and the sdist, checked as PyPI would (tests/test_packaging.py checks their contents).
dist: install
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist
	$(BIN)/twine check --strict dist/*

test: lint typecheck docs pytest

bench: install system-deps
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .coverage .pytest_cache .mypy_cache .ruff_cache site dist
