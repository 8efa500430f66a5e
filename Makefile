# Everything starts from nothing: `make test` creates .venv, installs the project with its
# development dependency groups (pyproject.toml: test, lint, docs, interop), then runs ruff,
# mypy --strict, pytest (with coverage of the core), checks the built sdist and wheel, the
# typing users see (pyright --verifytypes), and the version matrix (the installed wheel on
# every other CPython 3.10-3.13 on the machine).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The package and its dependencies only: all `make demo` needs.
BASE := $(VENV)/.base-installed
# Plus the development groups. `pip install --group` needs pip >= 25.1.
STAMP := $(VENV)/.installed
GROUPS := --group test --group lint --group docs --group interop
DIST := build/dist

.PHONY: test demo lint typecheck pytest dist verifytypes matrix bench-core bench-message bench bench-quick clean fuzz docs soak

$(BASE): pyproject.toml heartbeat_core/__init__.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=25.1'
	@# -qq: setuptools' note on every editable install ("Editable installation ...") is not ours
	$(PY) -m pip install -qq -e .
	touch $@

$(STAMP): $(BASE)
	$(PY) -m pip install --quiet $(GROUPS)
	touch $@

test: lint typecheck dist pytest verifytypes matrix

# A 12-second tour on 127.0.0.1 (live RTT, a frozen client found dead, a server restart);
# creates .venv first when needed, with the package alone (no development tools).
demo: $(BASE)
	$(VENV)/bin/heartbeat demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# tests/packaging checks the sdist and wheel that `make dist` built.
pytest: $(STAMP) dist
	HEARTBEAT_DIST=$(DIST) $(PY) -m pytest --cov --cov-branch --cov-report=term --cov-fail-under=100 -q

# The sdist and the wheel, built afresh into build/dist: no build warning, twine check --strict.
dist: $(STAMP)
	$(PY) tools/build_dist.py $(DIST)

# The typing users see: pyright --verifytypes on the wheel installed in a fresh venv (which
# must pull in only wsproto and h11): heartbeat_core 100 %, each adapter package >= 98 %.
verifytypes: $(STAMP) dist
	$(PY) tools/check_wheel.py $(DIST)

# The installed wheel on every other CPython 3.10-3.13 found here: tests/core and tests/adapters
# (the contract suite over both drivers), one fresh venv per version (a line per version).
matrix: $(STAMP) dist
	$(PY) tools/matrix.py $(DIST)

# The documentation site, warnings as errors (diagrams are generated from the code at build time).
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# A long random hypothesis run of the receive_data fuzzer (the short, derandomised run is
# part of `make test`). Override the count: make fuzz HEARTBEAT_FUZZ_EXAMPLES=100000
HEARTBEAT_FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	HEARTBEAT_FUZZ_EXAMPLES=$(HEARTBEAT_FUZZ_EXAMPLES) $(PY) -m pytest tests/faults/test_fuzz_connection.py \
		-q -p no:randomly --timeout=0 --hypothesis-show-statistics

# A 30-minute run through both servers (not in CI): 5,000 connections, 10 % reconnecting and
# 1 % frozen every minute, both servers restarted once; a line of figures per minute and the
# verdict (exit status 0 when RSS drift, fds, threads, false positives and detections hold).
# The table goes to build/soak.md (docs/faults-results.md quotes one run). A trial run:
#   .venv/bin/python tools/soak.py --minutes 3 --minute 20 --connections 400
soak: $(STAMP)
	mkdir -p build
	$(PY) tools/soak.py --minutes 30 --connections 5000 --report build/soak.md

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --group bench
	touch $@

bench-core: $(STAMP)
	$(PY) benchmarks/bench_core.py

bench-message: $(STAMP)
	$(PY) benchmarks/bench_message.py

# Side-by-side server benchmarks (about 30 minutes; writes docs/benchmarks-results.md and
# benchmarks/results/full-*.json). bench-quick is a smoke run of the same (about 2 minutes).
bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(BENCH_STAMP)
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build dist *.egg-info
	rm -rf docs/_build docs/_generated
