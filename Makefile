# Everything starts from nothing: `make test` creates .venv, installs the project with
# its test extras, then runs ruff, mypy --strict and pytest (with coverage of the core).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest bench-core bench bench-quick clean fuzz docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: lint typecheck pytest

# A 12-second tour on 127.0.0.1 (live RTT, a frozen client found dead, a server restart);
# creates .venv first when needed, like `make test`.
demo: $(STAMP)
	$(VENV)/bin/heartbeat demo

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest --cov --cov-branch --cov-report=term --cov-fail-under=100 -q

DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# The documentation site, warnings as errors (diagrams are generated from the code at build time).
docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# A long random hypothesis run of the receive_data fuzzer (the short, derandomised run is
# part of `make test`). Override the count: make fuzz HEARTBEAT_FUZZ_EXAMPLES=100000
HEARTBEAT_FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	HEARTBEAT_FUZZ_EXAMPLES=$(HEARTBEAT_FUZZ_EXAMPLES) $(PY) -m pytest tests/faults/test_fuzz_connection.py \
		-q -p no:randomly --timeout=0 --hypothesis-show-statistics

bench-core: $(STAMP)
	$(PY) benchmarks/bench_core.py

# Side-by-side server benchmarks (about 30 minutes; writes docs/benchmarks-results.md and
# benchmarks/results/full-*.json). bench-quick is a smoke run of the same (under 2 minutes).
bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info
	rm -rf docs/_build docs/_generated
