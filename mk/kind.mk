# A real cluster for the e2e suite: kind + KubeRay + the PitWall chart with locally built images.
# Included from the top-level Makefile (`include mk/kind.mk`). Needs docker, kind, kubectl and helm;
# .github/workflows/e2e-kind.yaml runs the same targets in CI.
#
#   make kind-up kind-load deploy e2e     # then: make kind-down

PY              ?= .venv/bin/python
KIND_CLUSTER    ?= pitwall
# Empty: kind's default node image. E.g. kindest/node:v1.31.x to test another Kubernetes minor.
KIND_NODE_IMAGE ?=
KIND_KUBECONFIG ?= $(CURDIR)/.kind/kubeconfig
KUBERAY_VERSION ?= 1.5.1
IMAGE_TAG       ?= dev
OPERATOR_IMAGE  ?= pitwall-operator:$(IMAGE_TAG)
TRAINER_IMAGE   ?= pitwall-trainer:$(IMAGE_TAG)
PITWALL_NS      ?= pitwall-system
# Where the e2e suite creates its TrainingRuns: the trainer ServiceAccount and Role go there.
E2E_NAMESPACE   ?= pitwall-e2e
E2E_ARGS        ?=

KUBECTL := kubectl --kubeconfig $(KIND_KUBECONFIG)
HELM    := helm --kubeconfig $(KIND_KUBECONFIG)

.PHONY: kind-up kind-down images kind-load deploy e2e

kind-up:
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || \
	  kind create cluster --name $(KIND_CLUSTER) --wait 180s $(if $(KIND_NODE_IMAGE),--image $(KIND_NODE_IMAGE))
	kind export kubeconfig --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
	$(HELM) repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update
	$(HELM) upgrade --install kuberay-operator kuberay/kuberay-operator --version $(KUBERAY_VERSION) \
	  --namespace ray-system --create-namespace --wait --timeout 5m

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

images:
	docker build -f Dockerfile.operator -t $(OPERATOR_IMAGE) .
	docker build -f Dockerfile.trainer -t $(TRAINER_IMAGE) .

# kind nodes cannot pull from the local docker daemon: copy the images into the node.
kind-load: images
	kind load docker-image $(OPERATOR_IMAGE) $(TRAINER_IMAGE) --name $(KIND_CLUSTER)

deploy:
	$(PY) scripts/sync-chart.py --check
	$(KUBECTL) create namespace $(E2E_NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(HELM) upgrade --install pitwall charts/pitwall --namespace $(PITWALL_NS) --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(OPERATOR_IMAGE))) --set image.tag=$(IMAGE_TAG) \
	  --set trainer.image.repository=$(firstword $(subst :, ,$(TRAINER_IMAGE))) --set trainer.image.tag=$(IMAGE_TAG) \
	  --set 'trainer.namespaces={$(E2E_NAMESPACE)}' --set mlflow.enabled=true \
	  --wait --timeout 10m
	$(KUBECTL) -n $(PITWALL_NS) rollout status deployment/pitwall-operator --timeout 5m

e2e:
	PITWALL_E2E_NAMESPACE=$(E2E_NAMESPACE) $(PY) -m pytest tests/e2e --kubeconfig $(KIND_KUBECONFIG) $(E2E_ARGS)
