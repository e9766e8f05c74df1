# Two entry points, each doing its own (idempotent) setup in a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# `make run` needs the package alone; `make test` adds the test tools, the Ray launcher (the
# Ray multirun test runs in CI) and MiniGrid (the user-env stream's MiniGrid tests). Each stamp
# re-installs when the packaging files change.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: run test lint bench setup clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) -e .
	touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[dev,ray,minigrid]'
	touch $@

setup: $(TEST_STAMP)

run: $(RUN_STAMP)
	$(PY) train.py $(ARGS)

test: $(TEST_STAMP)
	$(PY) -m pytest -m "not slow" $(ARGS)

lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

bench: $(TEST_STAMP)
	$(PY) benchmarks/bench_env.py
	$(PY) benchmarks/bench_si_overhead.py

clean:
	rm -rf $(VENV) outputs multirun
