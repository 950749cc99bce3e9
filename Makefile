# Portcullis: `make up` runs the local stack, `make test` runs every test. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(CURDIR)
# The pinned toolchain (make setup) comes first, so node, envoy, opa and nats-server are the pinned ones.
export PATH := $(ROOT)/.tools/bin:$(ROOT)/node_modules/.bin:$(PATH)
CONFIG ?= deploy/local/portcullis.yaml
# Keep in step with SERVE_NODE_FLAGS in src/localstack/processes.ts (why: see there).
SERVE_NODE_FLAGS := --max-semi-space-size=4

.PHONY: help setup build up test test-unit test-e2e typecheck bench envoy-config clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install the pinned toolchain into .tools/ and the npm dependencies (idempotent)
	@bash deploy/local/setup.sh

build: setup ## bundle the CLI into dist/portcullis.mjs (what production runs: no type stripping at run time)
	npm run --silent build

up: build ## run Envoy + Portcullis + the bundled mock provider on loopback (Ctrl-C stops)
	node $(SERVE_NODE_FLAGS) dist/portcullis.mjs up --config $(CONFIG)

typecheck: setup ## strict TypeScript check of src/ and test/
	tsc -p tsconfig.json

test: setup typecheck ## every test: unit, protocol conformance, end-to-end through real Envoy
	vitest run --config test/vitest.config.ts

test-unit: setup ## unit tests only (no servers)
	vitest run --config test/vitest.config.ts --project unit

test-e2e: setup ## conformance and end-to-end tests (real Envoy)
	vitest run --config test/vitest.config.ts --project conformance --project e2e

bench: build ## Envoy->mock vs Envoy->Portcullis->mock latency, max RPS, CPU and RSS (bounded, loopback only)
	node test/bench/run.ts

envoy-config: setup ## print the Envoy bootstrap rendered from CONFIG
	@node src/cli/main.ts envoy-config --config $(CONFIG)

clean: ## remove run state and the build (keeps the toolchain)
	rm -rf .run dist coverage
