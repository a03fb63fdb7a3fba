# Kota — the two commands a newcomer types: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test install lint format bench migrate demo clean check-deploy

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py setup_schedules

demo: migrate
	$(BIN)/python manage.py load_demo

## Installs, migrates, loads the demo, then runs web + Celery worker + celery-beat in the foreground.
## `exec`: make's child is run.sh itself, whose trap stops all three when make is signalled.
run: demo
	exec env PORT=$(PORT) BIN=$(BIN) scripts/run.sh

## Installs and runs the whole suite (lint, import contract, tests incl. browser tests).
test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench $(BENCH) $(BENCH_ARGS)

check-deploy: install
	DJANGO_SETTINGS_MODULE=config.settings.production DJANGO_SECRET_KEY=$$(openssl rand -hex 32) \
	  DJANGO_ALLOWED_HOSTS=kota.example.com $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf var/*.sqlite3* var/broker var/mail
