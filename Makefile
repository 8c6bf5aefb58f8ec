# adclick-ops: the two commands of the README, and a few more.
#   make run    set up everything and run the pipeline on the embedded Airflow (Ctrl-C to stop)
#   make test   install and run the tests
#   make lint   ruff's checks and its format check
#   make compose-test   start docker-compose.yaml on podman and prove it works (root, Debian)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed

.PHONY: run run-once test lint format bench validate estimator-rules schema reference lock clean compose-test

# The packages are compiled to bytecode once, here: every Airflow command and every task process
# then imports from .pyc files, even where PYTHONDONTWRITEBYTECODE is set (2.5 times faster to
# start an Airflow command on this machine; see docs/performance.md).
$(STAMP): requirements.lock pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.9.30
	$(UV) pip install --quiet -p $(PY) -r requirements.lock
	$(UV) pip install --quiet -p $(PY) --no-deps -e .
	$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
	touch $(STAMP)

# RUN_ARGS: more options of `adclick-ops run`, e.g. RUN_ARGS="--port 8081 --airflow-home /tmp/af".
# Ctrl-C, or a SIGINT/SIGTERM sent to make alone, stops everything the command started.
RUN_ARGS ?=
run: $(STAMP)
	$(VENV)/bin/adclick-ops run $(RUN_ARGS)

run-once: $(STAMP)
	$(VENV)/bin/adclick-ops run --once

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The monitor's load benchmark needs wrk (Debian's package).
bench: $(STAMP)
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) benchmarks/run_all.py

# docker-compose.yaml started for real on podman, with stand-in images built locally
# (tests/compose/README.md); bounded in time, leaves nothing running.
compose-test: $(STAMP)
	$(PY) tests/compose/stack.py

validate: $(STAMP)
	$(VENV)/bin/adclick-ops validate

# The estimators' parameter rules, read from the installed scikit-learn (after upgrading it), then the
# JSON Schemas, which carry them.
estimator-rules: $(STAMP)
	$(VENV)/bin/adclick-ops estimator-rules

schema: estimator-rules
	$(VENV)/bin/adclick-ops schema

reference: $(STAMP)
	$(VENV)/bin/adclick-ops reference

# Regenerate the full lock after changing requirements*.txt.
lock: $(STAMP)
	$(UV) pip compile requirements.txt requirements-dev.txt -p 3.11 --no-header -o requirements.lock

clean:
	rm -rf .airflow runs mail test-artifacts
