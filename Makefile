# The platform's verbs. Every target sets itself up, so a fresh clone needs no other step.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Editable installs of our own packages; their pyproject files decide when to reinstall.
LOCAL_PACKAGES := dags/ml_contract services/ml_dependencies services/trainer services/deployer
STAMP := $(VENV)/.setup-done
# Where `make demo` keeps its data, MLflow database and artifacts.
LOCAL_DIR ?= .local
MLFLOW_PORT ?= 5000

.PHONY: help setup lock lint format test demo bench mlflow-ui serving-down clean

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the pinned dependencies (quick when nothing changed)

$(STAMP): requirements.lock $(addsuffix /pyproject.toml,$(LOCAL_PACKAGES))
	@echo "setup: installing pinned dependencies from requirements.lock into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock 2>&1 \
	  | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	  $(addprefix -e ,$(LOCAL_PACKAGES)) 2>&1 | { grep -v "^WARNING: Location" || true; }
	@touch $@
	@echo "setup: done"

lock: ## re-pin requirements.lock from requirements.in in a throwaway venv
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet -r requirements.in
	{ echo "# Pinned from requirements.in by 'make lock' (pip freeze of a fresh venv). Do not edit by hand."; \
	  $(VENV)-lock/bin/python -m pip freeze | sed -E 's/^(torch==[0-9.]+)\+cpu$$/\1/'; } > requirements.lock
	rm -rf $(VENV)-lock

lint: setup ## ruff lint (with the Airflow AIR rules) and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup lint check-dags ## everything that can run on this machine: lint, DAG checks, pytest
	$(BIN)/pytest

demo: setup ## the main job, locally, against a real MLflow server
	PYTHONPATH=dags $(BIN)/python -m ml_platform.local.demo --local-dir $(LOCAL_DIR) --mlflow-port $(MLFLOW_PORT) $(ARGS)

.PHONY: check-dags new-dag run-dag
check-dags: setup ## DAG files: imports, parse time, policies, pod placement (docs/ml-teams.md)
	PYTHONPATH=dags $(BIN)/python -m ml_platform.checks dags

new-dag: setup ## scaffold a team's model (spec, DAG, test): NAME=<name> TEAM=<team> [TRAINER=1: own trainer image]
	PYTHONPATH=dags $(BIN)/python -m ml_platform.scaffold --team "$(TEAM)" --name "$(NAME)" \
	  $(if $(filter 1 yes true,$(TRAINER)),--trainer)

run-dag: setup ## run one DAG locally like `make demo`: DAG=<dag_id> [ARGS='--date ...']
	@test -n "$(DAG)" || { echo "run-dag: DAG=<dag_id> is required, e.g. make run-dag DAG=ml_drift_monitor" >&2; exit 2; }
	PYTHONPATH=dags $(BIN)/python -m ml_platform.local.demo --dag "$(DAG)" \
	  --local-dir $(LOCAL_DIR) --mlflow-port $(MLFLOW_PORT) $(ARGS)

# The platform on one machine (docs/local-platform.md): the real Airflow services on a
# PostgreSQL of its own, MLflow and the SMTP sink on 127.0.0.1; data under LOCAL_DIR.
# Ports (default 8080, MLFLOW_PORT, 8025, 5433; 0: any free one) are passed on only when set on
# the command line or in the environment: a later `make up` keeps the ports of the first.
port_flag = $(if $(filter command line environment,$(origin $(1))),--$(2)-port $($(1)))
STACK := PYTHONPATH=dags $(BIN)/python -m ml_platform.local.stack --local-dir $(LOCAL_DIR)

.PHONY: up down e2e-local
up: setup ## the platform on this machine: Airflow UI/API, scheduler, triggerer on PostgreSQL; MLflow
	$(STACK) up $(call port_flag,AIRFLOW_PORT,airflow) $(call port_flag,MLFLOW_PORT,mlflow) \
	  $(call port_flag,SMTP_PORT,smtp) $(call port_flag,POSTGRES_PORT,postgres)

down: ## stop everything `make up` started, by PID; the data stays in LOCAL_DIR
	@if test -x $(BIN)/python; then $(STACK) down; else echo "down: no $(VENV): nothing was started"; fi

e2e-local: setup ## the e2e suite (tests/e2e) on the platform on this machine (own LOCAL_DIR, free ports)
	E2E_TARGET=local E2E_REQUIRED=1 $(BIN)/pytest tests/e2e -m e2e -rs -o log_cli=true \
	  --log-cli-level=INFO

# The kind path (docs/kind.md): a local cluster running the kind stack, the platform images,
# and the end-to-end tests against it. The shell logic lives in infra/kind/ and infra/deploy.sh.
.PHONY: kind-up images deploy e2e kind-down
kind-up: setup ## create the local kind cluster unless it exists, and check it
	infra/kind/up.sh

images: setup ## build the platform images (CPU) and every team image, and load them into kind
	infra/kind/images.sh

deploy: setup ## pulumi up one stack: ENV=kind (local state in .local/kind) or ENV=dev|prod
	infra/deploy.sh "$(ENV)"

e2e: setup ## the e2e suite (tests/e2e) on the kind stack (after kind-up, images, deploy ENV=kind)
	E2E_TARGET=kind E2E_REQUIRED=1 $(BIN)/pytest tests/e2e -m e2e -rs -o log_cli=true --log-cli-level=INFO

kind-down: setup ## delete the kind cluster and the kind stack's local state
	infra/kind/down.sh

bench: setup ## benchmarks, each printing its figures and ratios side by side
	@status=0; for script in tests/benchmarks/bench_*.py; do \
	  echo "== $$script"; PYTHONPATH=dags:. $(BIN)/python $$script || status=1; done; \
	  exit $$status  # every benchmark runs; a missed target still fails the verb

mlflow-ui: setup ## browse the MLflow data of the last `make demo`
	$(BIN)/mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1 \
	  --backend-store-uri sqlite:///$(abspath $(LOCAL_DIR))/mlflow/mlflow.db \
	  --artifacts-destination $(abspath $(LOCAL_DIR))/mlflow/mlartifacts

serving-down: ## stop the model servers `make demo` left serving
	$(BIN)/python -c 'import sys; from deployer.targets.local import stop_all_models; \
	  print("stopped:", ", ".join(stop_all_models(sys.argv[1])) or "nothing")' $(LOCAL_DIR)/deployer

clean: serving-down ## stop local model servers and remove the local run's data (keeps .venv)
	rm -rf $(LOCAL_DIR)
