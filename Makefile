# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: admin install run test test-fast up down bench lint clean load-campaign

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install the platform with its test tools

admin: install ## create the first admin account (asks for a password)
	$(PY) -m services.intake.identity_cli create-admin --username $(or $(ADMIN),admin)

run: install ## start the whole platform in one process on http://127.0.0.1:8000
	$(PY) -m deploy.embedded

test: install ## run every test (RabbitMQ/PostgreSQL tests skip unless REQUIRE_SERVICES=1)
	$(PY) -m pytest $(PYTEST_ARGS)

up: ## start the distributed platform with Docker
	docker compose up --build -d

down:
	docker compose down

bench: install ## print the benchmark figures (pass options as UPLOAD_ARGS="--size-mib 256" PIPELINE_ARGS="--n 50" COVERAGE_ARGS="--runs 20")
	$(PY) -m bench.upload $(UPLOAD_ARGS)
	$(PY) -m bench.pipeline $(PIPELINE_ARGS)
	$(PY) -m bench.coverage $(COVERAGE_ARGS)

load-campaign: install ## load a campaign definition into the embedded state (CAMPAIGN=deploy/campaigns/huaibei-2020.yaml)
	$(PY) -m services.intake.cli load $(or $(CAMPAIGN),deploy/campaigns/huaibei-2020.yaml)

lint: install
	$(PY) -m compileall -q shared services deploy tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
