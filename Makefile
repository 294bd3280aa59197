# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Pinned with hashes by `make lock`: the runtime set with OCR (the image) and runtime+ocr+test+lint (developers,
# CI). Both are complete resolutions, installed with --no-deps: deploy/lock-overrides.txt drops opencv-python
# (which rapidocr declares, and which needs libGL) for opencv-python-headless, so pip must not re-resolve.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# pytest-xdist: the unit tier is CPU-bound, so it runs on every core. The whole suite passed in parallel too
# (make test XDIST="-n auto"), but was not shown to finish sooner on this 2-core machine, so it stays serial.
FAST_XDIST ?= -n auto
XDIST ?=

.PHONY: admin install lock run test test-fast test-console test-deps browser-deps secrets up up-local down bench lint format clean load-campaign demo

$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) deploy/lockcheck.py check $(DEV_LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install the platform with its test and lint tools from the lock

lock: ## regenerate requirements.lock and requirements-dev.lock (with hashes) from pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet 'uv>=0.5,<1'
	$(PY) -m uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --override deploy/lock-overrides.txt \
	  --custom-compile-command 'make lock' --extra ocr pyproject.toml -o $(LOCK)
	$(PY) -m uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --override deploy/lock-overrides.txt \
	  --custom-compile-command 'make lock' --extra ocr --extra test --extra lint pyproject.toml -o $(DEV_LOCK)
	$(PY) deploy/lockcheck.py stamp $(LOCK) $(DEV_LOCK)

admin: install ## create the first admin account (asks for a password)
	$(PY) -m services.intake.identity_cli create-admin --username $(or $(ADMIN),admin)

run: install ## start the whole platform in one process on http://127.0.0.1:8000
	$(PY) -m deploy.embedded

test: install test-deps ## run every test (brings Chromium first; RabbitMQ/PostgreSQL tests skip unless REQUIRE_SERVICES=1)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The folders whose every test is in another tier (tests/conftest.py) are not even collected: their imports
# (the whole embedded platform, playwright) cost each xdist worker about a second.
FAST_IGNORE := --ignore=tests/console --ignore=tests/faults --ignore=tests/flows

test-fast: install ## run the unit tier only (no servers, no browser): the loop to run while editing
	$(PY) -m pytest -m unit $(FAST_IGNORE) $(FAST_XDIST) -q $(PYTEST_ARGS)

test-console: install test-deps ## run the web console's browser tests (screenshots in artifacts/console/)
	$(PY) -m pytest tests/console $(PYTEST_ARGS)

# What the tests need beyond the virtualenv: Chromium and CJK fonts for the console's browser tests (ffmpeg
# comes with the imageio-ffmpeg wheel). A machine where apt-get cannot run still tests everything else:
# the browser tests then skip, saying why. SKIP_BROWSER_DEPS=1 skips the attempt.
test-deps:
	@if [ -n "$(SKIP_BROWSER_DEPS)" ]; then echo "SKIP_BROWSER_DEPS set: not installing Chromium"; \
	else $(MAKE) --no-print-directory browser-deps || \
	  echo "warning: could not install Chromium and fonts-noto-cjk (needs apt-get as root or sudo): the console's browser tests will skip"; fi

# The console's browser tests drive Debian's Chromium (never `playwright install`) and need CJK fonts.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_INSTALL = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk

browser-deps: ## install Chromium and the CJK fonts with apt-get if they are missing
	@if [ -x $(CHROMIUM) ] && dpkg -s fonts-noto-cjk >/dev/null 2>&1; then \
	  echo "Chromium and the CJK fonts are installed"; \
	else \
	  echo "installing chromium and fonts-noto-cjk"; \
	  $(APT_INSTALL) || { $(SUDO) apt-get update -q && $(APT_INSTALL); }; \
	fi

secrets: install ## write the secret files docker-compose.yml mounts (deploy/secrets/; existing ones are kept)
	$(PY) -m deploy.secrets

up: ## start the distributed platform with Docker (run `make secrets` once before)
	@test -f deploy/secrets/auth_private_key || { echo "no secrets yet: run make secrets first"; exit 1; }
	docker compose up --build -d

down:
	docker compose down

up-local: install ## the distributed platform without Docker: 8 processes on the local RabbitMQ/PostgreSQL (UP_ARGS="--name demo" keeps the data; Ctrl-C stops all)
	$(PY) -m deploy.processes up $(UP_ARGS)

bench: install ## print the benchmark figures (pass options as UPLOAD_ARGS="--size-mib 256" PIPELINE_ARGS="--n 50" COVERAGE_ARGS="--runs 20" ASSESSMENT_ARGS="--units 500" OCR_ARGS="--hard")
	$(PY) -m bench.upload $(UPLOAD_ARGS)
	$(PY) -m bench.pipeline $(PIPELINE_ARGS)
	$(PY) -m bench.coverage $(COVERAGE_ARGS)
	$(PY) -m bench.assessment $(ASSESSMENT_ARGS)
	$(PY) -m bench.ocr $(OCR_ARGS)

demo: install ## load an invented Huaibei campaign under way today (people, evidence, decisions; example.org), then serve it
	$(PY) -m deploy.demo
	$(PY) -m deploy.embedded

load-campaign: install ## load a campaign definition into the embedded state (CAMPAIGN=deploy/campaigns/huaibei-2020.yaml)
	$(PY) -m services.intake.cli load $(or $(CAMPAIGN),deploy/campaigns/huaibei-2020.yaml)

lint: install ## ruff (lint and format check) and mypy, as pre-commit and CI run them
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install ## apply ruff's safe fixes and formatting to FILES="a.py b.py" (the files you changed, not the tree)
	@test -n "$(FILES)" || { echo "usage: make format FILES='path/to/changed.py ...'" >&2; exit 2; }
	$(PY) -m ruff check --fix $(FILES)
	$(PY) -m ruff format $(FILES)

clean:
	rm -rf $(VENV) var .pytest_cache
