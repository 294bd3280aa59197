# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: admin install run test test-fast test-console test-deps browser-deps up down bench lint clean load-campaign demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install the platform with its test tools

admin: install ## create the first admin account (asks for a password)
	$(PY) -m services.intake.identity_cli create-admin --username $(or $(ADMIN),admin)

run: install ## start the whole platform in one process on http://127.0.0.1:8000
	$(PY) -m deploy.embedded

test: install test-deps ## run every test (brings Chromium first; RabbitMQ/PostgreSQL tests skip unless REQUIRE_SERVICES=1)
	$(PY) -m pytest $(PYTEST_ARGS)

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

up: ## start the distributed platform with Docker
	docker compose up --build -d

down:
	docker compose down

bench: install ## print the benchmark figures (pass options as UPLOAD_ARGS="--size-mib 256" PIPELINE_ARGS="--n 50" COVERAGE_ARGS="--runs 20" ASSESSMENT_ARGS="--units 500")
	$(PY) -m bench.upload $(UPLOAD_ARGS)
	$(PY) -m bench.pipeline $(PIPELINE_ARGS)
	$(PY) -m bench.coverage $(COVERAGE_ARGS)
	$(PY) -m bench.assessment $(ASSESSMENT_ARGS)

demo: install ## load an invented Huaibei campaign under way today (people, evidence, decisions; example.org), then serve it
	$(PY) -m deploy.demo
	$(PY) -m deploy.embedded

load-campaign: install ## load a campaign definition into the embedded state (CAMPAIGN=deploy/campaigns/huaibei-2020.yaml)
	$(PY) -m services.intake.cli load $(or $(CAMPAIGN),deploy/campaigns/huaibei-2020.yaml)

lint: install
	$(PY) -m compileall -q shared services deploy tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
