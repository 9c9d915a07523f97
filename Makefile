# Two commands on a fresh machine: `make run` and `make test`.
# Everything installs into .venv from requirements.lock (exact versions, hashes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test bench install protos lock clean help dashboard images images-test lock-cuda

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

# torch==X+cpu is not on PyPI: scripts/torch_source.py prints nothing when pip finds the
# wheel offline (its configured find-links), else PyTorch's CPU index as an extra index.
# llama-cpp-python compiles from source on a fresh machine: skip its multimodal library,
# which nothing here loads (as the images do); set CMAKE_ARGS to build it your way.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
	  $(PY) -m pip install --quiet --require-hashes $$($(PY) scripts/torch_source.py) -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependencies

run: install  ## run the main job on embedded defaults: the whole method, end to end
	$(VENV)/bin/maestromotif pipeline --profile tiny

test: install  ## install and run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: fuzz
fuzz: install  ## fuzz every RPC of reward, learner, annotator, codegen, agent (hypothesis; also in make test; FUZZ_SCALE=10 for more examples)
	$(PY) -m pytest tests/fuzz -q

.PHONY: security
security: install  ## tokens, mTLS, secret leaks, sandbox corpus, chart TLS (issue 15.4; also part of make test)
	$(PY) -m pytest tests/security tests/codegen/test_codegen_corpus.py -q

.PHONY: chaos
chaos: install  ## fault tests (kill -9 of real service processes, corrupted files, full disk) and the training soak
	$(PY) -m pytest tests/chaos -q -m "chaos or not chaos"

bench: install  ## run benchmarks/ (each prints a ratio against a same-run baseline)
	$(PY) -m benchmarks

protos: install  ## regenerate the gRPC stubs from protos/
	$(PY) -m maestromotif.protogen

.PHONY: chart-schema
chart-schema: install  ## regenerate helm/maestromotif/values.schema.json from the services' settings models
	$(PY) -m maestromotif.kit.chartschema

lock:  ## re-resolve requirements.in into requirements.lock
	$(PY) -m pip install --quiet pip-tools==7.6.2
	$(VENV)/bin/pip-compile --quiet --no-emit-index-url --no-emit-find-links --generate-hashes \
	  --strip-extras --allow-unsafe -o requirements.lock requirements.in

dashboard: install  ## regenerate the Grafana dashboard JSON of the Helm chart from maestromotif/observability/dashboard.py
	$(PY) -m maestromotif.observability.dashboard

clean:  ## remove the virtual environment
	rm -rf $(VENV)

# Images (needs root, or DOCKER_HOST naming a daemon); see README "Images".
images:  ## build every service image (local Debian base; starts its own dockerd)
	nice -n 10 $(PYTHON) scripts/images.py build $(IMAGES_ARGS)

images-test: install  ## start every service (agent from the actors image) read-only as uid 10001: gRPC health, /metrics, codegen/agent requests
	$(PY) scripts/images.py test $(IMAGES_ARGS)

lock-cuda:  ## re-resolve docker/requirements-cuda.lock (CUDA torch for the GPU images; needs PyPI)
	$(PYTHON) scripts/images.py lock-cuda
