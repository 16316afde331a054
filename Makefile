# Two front-door targets (README): `make demo` and `make test`. Both set up .venv first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: setup controlplane demo train test lint crds

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	python3 -m uv venv --quiet --allow-existing --python python3.11 $(VENV)
	python3 -m uv pip install --quiet --python $(PY) -e ".[dev]"
	touch $(STAMP)

# The sandbox's control plane (Kubernetes, etcd, KubeRay) built from sandbox/controlplane/go.mod
# into ~/.cache/pitwall/controlplane (reused while the pins are unchanged). Needs Go.
controlplane: setup
	$(PY) -m pitwall_sandbox.build

# The main job: the sandbox cluster with the operator; the example TrainingRun applied with kubectl
# trains, registers and is promoted in a local MLflow store (state in .sandbox/).
demo: controlplane
	$(VENV)/bin/pitwall-sandbox demo

# The same training on a laptop, without a cluster (XGBoost here; the default is logistic_regression).
train: setup
	$(VENV)/bin/pitwall-train train --model race_winner --seasons 2022,2023,2024 --algorithm xgboost --output models/race_winner_v1.pkl

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: controlplane
	$(PY) -m ruff check api operator trainer sandbox kubectl tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests ran"; exit 1; fi; exit $$rc

lint: setup
	$(PY) -m ruff check api operator trainer sandbox kubectl tests bench
	$(VENV)/bin/lint-imports

# kind cluster, images and deploy targets (docs/deploy.md)
include mk/kind.mk
