# PayOrders developer commands. `make dev` runs the system, `make test` runs every test.
# Both install what they need (project venv under .venv, cargo crates) on first use.

PORT ?= 3000
# The local chain of `make dev`: CHAIN=0 leaves it out; CHAIN_PORT empty picks a free port.
CHAIN ?= 1
CHAIN_PORT ?=
CARGO ?= cargo

.PHONY: dev dev-chain demo reset test fuzz lint fmt build bench package services clean

## Start the local host on 127.0.0.1:$(PORT) with the embedded store in .local/, and a
## local EVM chain (31337, anvil) beside it unless CHAIN=0; .local/demo.env has both URLs.
dev:
	PORT=$(PORT) CHAIN=$(CHAIN) CHAIN_PORT=$(CHAIN_PORT) CARGO=$(CARGO) infra/scripts/dev.sh

## Against a running `make dev`: a signed SALE paid, COMPLETED, and its order.completed
## webhook verified with the official standardwebhooks library; each step timed.
demo:
	@infra/scripts/services.sh install-demo
	@.venv/bin/python infra/scripts/demo.py

## Forget the local state (.local/: store, demo organization, keys, chain); keeps the build.
reset:
	rm -rf .local

## The local chain alone (31337) on 127.0.0.1:$(CHAIN_PORT) (8545 if unset), for a host
## started with `PAYORDERS_RPC_31337=http://127.0.0.1:8545 CHAIN=0 make dev`.
dev-chain:
	infra/scripts/services.sh chain $(or $(CHAIN_PORT),8545)

## Every test, with moto server and anvil started on free ports and stopped afterwards; beside
## cargo test, against a fresh local host: make demo, a short schemathesis run and a client
## generated from docs/openapi.json (openapi-typescript + tsc).
test:
	infra/scripts/test.sh

## A long schemathesis campaign against its own local host (fresh store, local chain, testnet
## nodes): at least 10,000 signed requests over every operation of docs/openapi.json, all
## phases including stateful; prints the requests, operations and failures. FUZZ_TIME=600 s.
fuzz:
	infra/scripts/fuzz.sh long

## Formatting and clippy, warnings denied.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## Release build of the deployed binaries (the bundles) and the local host. (Each function
## crate's own binary, for `cargo lambda watch`, is left out: 31 more fat-LTO links.)
build:
	$(CARGO) build --release --locked -p payorders-local $(addprefix -p ,$(notdir $(wildcard bundles/*)))

## Benchmarks (medians of repeated runs): `make package`, then each function's size, cold
## start against a hello-world function and first event, the local host's throughput, and
## the cost per paid order on moto; UPDATE_DOCS=1 rewrites docs/performance.md.
bench:
	infra/scripts/bench.sh

## Every function built by `sam build` with cargo-lambda into .aws-sam/build (ARCH=x86_64 by
## default; arm64 needs the aarch64 Rust target), after `sam validate --lint`; prints sizes.
package:
	infra/scripts/package.sh

## Install the Python test services into .venv without starting them.
services:
	infra/scripts/services.sh install

clean:
	$(CARGO) clean
	rm -rf .venv .venv-sam .local .aws-sam
