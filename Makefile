# ctgwatch — the two commands a newcomer needs:
#   make demo   set everything up and run the main job on the embedded stack
#   make test   run the test suite (starts its own broker, Redis and Triton)
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup demo up down status test check chaos clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; fix: install Python 3.11 or run make PYTHON=python3"; exit 2; }
	@command -v redis-server >/dev/null || { echo "error: redis-server not found; fix: sudo apt-get install redis-server (or set CTGWATCH_REDIS_URL)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; a plain torch requirement could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/ctgwatch up --ward --fresh
	@echo
	@echo "The ward is live: $(BIN)/ctgwatch alerts lists the open alerts; worker metrics on :19100."
	@echo "Nurse station: http://127.0.0.1:18081/ after '$(BIN)/ctgwatch users add NAME --role nurse'."
	@echo "Stop everything with: make down"

up: setup
	$(BIN)/ctgwatch up

down:
	$(BIN)/ctgwatch down

status:
	$(BIN)/ctgwatch status

test: setup
	$(BIN)/python -m pytest

# Fault injection (kill -9 of Redis, broker, worker, Triton; broker stall; ~18 min): writes docs/RELIABILITY.md
chaos: setup
	$(BIN)/python -m pytest -q tests/chaos

# Code rules (CI runs them before the tests): style, types of every package, the import contract.
# The dependency audit is a test (tests/unit/test_dependency_audit.py): a skip CI shows when it cannot look up.
check: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean: down
	rm -rf .ctgwatch
