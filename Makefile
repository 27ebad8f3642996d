# conveyor: make demo | make test | make check
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast check format image bench soak mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints-dev.txt
	touch $(STAMP)

demo: $(STAMP)  ## the visa example end to end on the embedded store
	$(BIN)/conveyor demo

check: $(STAMP)  ## ruff, mypy, import-linter layer contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check  ## everything CI runs: checks, then all tests (slow and service ones included)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## skip the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow"

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

IMAGE_PROJECT ?= build/image-visa
IMAGE_TAG ?= conveyor-visa:dev
image: $(STAMP)  ## the visa example's image with this checkout's wheel (BASE=IMAGE to change its base)
	rm -rf $(IMAGE_PROJECT)
	$(BIN)/conveyor init $(IMAGE_PROJECT) --example visa
	$(BIN)/python -m pip wheel --no-deps --quiet -w $(IMAGE_PROJECT) .
	$(BIN)/conveyor build-image -p $(IMAGE_PROJECT) --tag $(IMAGE_TAG) $(if $(BASE),--base $(BASE)) \
		--spec "/tmp/install/$$(cd $(IMAGE_PROJECT) && ls conveyor-*.whl)[postgres,s3]"

bench: $(STAMP)  ## benchmarks (peers in their own venvs: bench/.venv-peers, bench/.venv-evidently)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/quality.py

soak: $(STAMP)  ## 10 minutes of mixed traffic, hot swaps and key rotations against `conveyor serve`
	$(BIN)/python bench/soak.py

mutate: $(STAMP)  ## mutation testing of the critical modules ([tool.mutmut]; ~1 h, not in CI): score per module
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python tests/mutation_scores.py --survivors --fail-under 90

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info
