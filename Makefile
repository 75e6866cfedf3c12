# pixie — everything runs from a local .venv created on first use.
# `make run` installs only what running needs; the dev extra (pytest, cfn-lint) comes with
# `make test` and `make bench`, the deploy extra (CDK, cdk-nag) with `make test`, `make bench`,
# `make synth` and `make install`. Every install is held to constraints.txt, the versions the tests
# last passed with, so a new release on PyPI cannot change what a fresh clone runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROMPT ?= Build a todo app
ARGS   ?=

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install run test test-as-user bench mutants coverage synth clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per extra; each installs pixie (editable) with what it needs, showing pip's progress.
$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	@echo "pixie: installing the runtime into $(VENV) (once; a few minutes: mostly downloads)"
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

$(VENV)/.deploy: $(VENV)/.runtime
	$(BIN)/pip install --disable-pip-version-check -c constraints.txt -e '.[deploy]'
	touch $@

install: $(VENV)/.dev $(VENV)/.deploy

run: $(VENV)/.runtime
	$(BIN)/pixie run $(ARGS) "$(PROMPT)"

test: $(VENV)/.dev $(VENV)/.deploy
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

# The isolation tests again as uid 65534 (needs root): what root's powers could hide (.ci/run runs it).
test-as-user: $(VENV)/.dev $(VENV)/.deploy
	tools/test_as_user.sh

bench: $(VENV)/.dev $(VENV)/.deploy
	$(BIN)/python -m bench

# Break each promise on purpose (tools/mutations.py) and check the tests notice: one mutant per
# core at a time, each in its own scratch copy (MUTANTS_JOBS=1 for one at a time).
mutants: $(VENV)/.dev $(VENV)/.deploy
	$(BIN)/python -m tools.mutants $(MUTANTS)

# Branch coverage of the whole suite, every Python process a test starts included (pyproject.toml's
# [tool.coverage.run]: patch = subprocess, _exit); not part of `make test` (it runs about twice as
# long). Prints lines and branches per package; htmlcov/ has the detail.
coverage: $(VENV)/.dev $(VENV)/.deploy
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage run -m pytest -n auto -p no:randomly $(PYTEST_ARGS)
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage combine -q
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage json -q -o coverage.json
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage html -q
	$(BIN)/python -m tools.coverage_by_package coverage.json

synth: $(VENV)/.deploy
	. $(BIN)/activate && npx --yes aws-cdk@2 synth

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .coverage .coverage.* coverage.json htmlcov
