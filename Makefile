# netlens developer targets. `make demo` and `make test` are the README's two commands.
PY ?= python3
PYTEST ?= $(PY) -m pytest

.PHONY: setup demo test unit integration installed lint typecheck bench screenshots mutation mutation-ci clean-host

setup:
	@bash .ci/setup.sh

demo: setup
	$(PY) -m netlens demo

test: setup lint typecheck
	$(PYTEST) -m "not bench" -q

unit: setup
	$(PYTEST) -m "unit" -q

integration: setup
	$(PYTEST) -m "integration" -q

# The wheel as users get it, in a fresh venv outside the checkout (also part of `make test`).
installed: setup
	$(PYTEST) -m "installed" -q tests/installed

lint:
	$(PY) -m ruff check netlens runtime tests setup.py
	$(PY) -m ruff format --check netlens runtime tests setup.py
	$(PY) -c 'import sys; from importlinter.cli import lint_imports_command as c; c(["--no-cache"])'

typecheck:
	$(PY) -m mypy

bench: setup
	$(PYTEST) -m bench -s -q tests/bench

screenshots: setup
	$(PY) tests/tui/make_screenshots.py

# Mutation testing of the pure core against the unit tests (no root). Not part of
# `make test`: it takes minutes per module. MODULES=rates,nat picks modules,
# CHANGED=REV only those changed since git revision REV, JOBS=N sets mutmut's
# workers; nice 19 because the machine is shared.
MODULES ?=
JOBS ?= 2
CHANGED ?=
mutation:
	nice -n 19 $(PY) tests/mutation/run.py --jobs $(JOBS) $(if $(CHANGED),--changed $(CHANGED)) \
		$(subst $(comma), ,$(MODULES))
comma := ,

# CI's share of it: the modules whose source or unit tests changed since the revision
# in .ci/mutation-base (where every module's survivors were last reviewed), each held
# to 85 %; no new module starts after 15 minutes (the rest are named); with none
# changed, lab_model (9 mutants) runs so CI still proves mutmut works on a fresh machine.
mutation-ci: setup
	nice -n 10 $(PY) tests/mutation/run.py --jobs 2 --budget 900 --smoke lab_model \
		--changed $$(cat .ci/mutation-base)
