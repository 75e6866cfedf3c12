# pixie — everything runs from a local .venv created on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROMPT ?= Build a todo app
ARGS   ?=

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install run test bench mutants synth clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,deploy]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pixie run $(ARGS) "$(PROMPT)"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# Break each promise on purpose (tools/mutations.py) and check the tests notice (~5 min).
mutants: $(STAMP)
	$(BIN)/python -m tools.mutants $(MUTANTS)

synth: $(STAMP)
	. $(BIN)/activate && npx --yes aws-cdk@2 synth

clean:
	rm -rf $(VENV) cdk.out .pytest_cache
