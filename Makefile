# make demo: run the demo site.  make test: every gate and the whole suite on
# SQLite and PostgreSQL, in the default environment (Django 5.2, Python 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The demo needs the app and Django only; the gates and the suite need the
# test, dev and bench extras too.
DEMO_INSTALLED := $(VENV)/.installed-demo
INSTALLED := $(VENV)/.installed
PORT ?= 8000
# CI sets PG_REQUIRED=--require so that a missing PostgreSQL fails instead of skipping.
PG_REQUIRED ?=

.PHONY: demo test lint typecheck migrations suite matrix bench bench-quick screenshots clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEMO_INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet .
	touch $(DEMO_INSTALLED)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test,dev,bench]"
	touch $(INSTALLED) $(DEMO_INSTALLED)

# make demo PORT=8001 serves on another port.
demo: $(DEMO_INSTALLED)
	$(PY) manage.py migrate --no-input --verbosity 0
	$(PY) manage.py load_demo --port $(PORT)
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: lint typecheck migrations suite

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(INSTALLED)
	$(VENV)/bin/mypy

migrations: $(INSTALLED)
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) -m django makemigrations --check --dry-run
	$(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=bench.settings $(PY) -m django makemigrations --check --dry-run benchapp

# Coverage of versioning/ is combined over both databases and must stay >= 95%.
suite: $(INSTALLED)
	$(PY) -m coverage erase
	@echo "== test suite on SQLite =="
	$(PY) -m coverage run -m pytest
	@echo "== test suite on PostgreSQL =="
	$(PY) tests/pgserver.py $(PG_REQUIRED) -- $(PY) -m coverage run -m pytest
	$(PY) -m coverage combine --quiet
	$(PY) -m coverage report

# Django 5.2 on Python 3.11 and Django 6.x on Python 3.13, each on both databases.
matrix: $(INSTALLED)
	$(VENV)/bin/nox

# Writes bench/results.md, its raw figures bench/results.json and the growth
# plot docs/growth.png (about 5 minutes on a quiet 2-core machine, up to half an hour
# when other work shares it; see docs/performance.md).
# Not a test: nothing asserts a time.
bench: $(INSTALLED)
	$(PY) bench/run.py

# Small sizes (every table, the growth table too, and the plot, thrown away),
# printed only: CI runs this to keep the benchmark working.
bench-quick: $(INSTALLED)
	$(PY) bench/run.py --quick

# Regenerates the README's admin screenshots from the browser tests.
screenshots: $(INSTALLED)
	VERSIONING_SCREENSHOTS_DIR=docs/screenshots $(PY) -m pytest tests/browser

clean:
	rm -rf $(VENV) .nox demo.sqlite3 .coverage .coverage.*
