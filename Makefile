# make demo: run the demo site.  make test: the whole suite on SQLite and PostgreSQL.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# CI sets PG_REQUIRED=--require so that a missing PostgreSQL fails instead of skipping.
PG_REQUIRED ?=

.PHONY: demo test test-sqlite test-postgres lint screenshots clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PY) manage.py migrate --no-input --verbosity 0
	$(PY) manage.py load_demo
	$(PY) manage.py runserver 127.0.0.1:8000

test: test-sqlite test-postgres

test-sqlite: $(INSTALLED)
	@echo "== test suite on SQLite =="
	$(PY) -m pytest

test-postgres: $(INSTALLED)
	@echo "== test suite on PostgreSQL =="
	$(PY) tests/pgserver.py $(PG_REQUIRED) -- $(PY) -m pytest

# Regenerates the README's admin screenshots from the browser tests.
screenshots: $(INSTALLED)
	VERSIONING_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/browser

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) demo.sqlite3
