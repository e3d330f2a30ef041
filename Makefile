# The two commands: `make run` (start the platform) and `make test` (run the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint bench-mlm bench-import clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	./scripts/run.sh

test: install
	./scripts/test.sh $(ARGS)

# The browser tests' Chromium and chromedriver, from Debian's packages (no downloaded browser builds).
# Installs them when missing (apt-get: needs root, or sudo); does nothing when both are there.
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	  echo "browser: $$(/usr/bin/chromium --version 2>/dev/null) and chromedriver are installed"; \
	else \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  echo "browser: installing Debian's chromium and chromium-driver (apt-get, needs root)"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var/db.sqlite3 var/celery var/chain.json var/chain-journal.jsonl* var/chain-reset.json var/static
