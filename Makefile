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

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var/db.sqlite3 var/celery var/chain.json var/chain-journal.jsonl* var/chain-reset.json var/static
