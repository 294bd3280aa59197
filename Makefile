# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-fast up down bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install the platform with its test tools

run: install ## start the whole platform in one process on http://127.0.0.1:8000
	$(PY) -m deploy.embedded

test: install ## run every test (RabbitMQ/PostgreSQL tests skip unless REQUIRE_SERVICES=1)
	$(PY) -m pytest $(PYTEST_ARGS)

up: ## start the distributed platform with Docker
	docker compose up --build -d

down:
	docker compose down

bench: install ## print the benchmark figures
	$(PY) -m bench.upload
	$(PY) -m bench.pipeline

lint: install
	$(PY) -m compileall -q shared services deploy tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
