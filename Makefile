# PayOrders developer commands. `make dev` runs the system, `make test` runs every test.
# Both install what they need (project venv under .venv, cargo crates) on first use.

PORT ?= 3000
CHAIN_PORT ?= 8545
CARGO ?= cargo

.PHONY: dev dev-chain test lint fmt build bench services clean

FUNCTIONS := $(notdir $(wildcard functions/*))

## Start the local host on 127.0.0.1:$(PORT) with the embedded store.
dev:
	$(CARGO) build --bin payorders
	./target/debug/payorders serve --port $(PORT)

## A local EVM chain (31337) on 127.0.0.1:$(CHAIN_PORT) with the test token deployed;
## run `PAYORDERS_RPC_31337=http://127.0.0.1:$(CHAIN_PORT) make dev` beside it.
dev-chain:
	infra/scripts/services.sh chain $(CHAIN_PORT)

## Every test, with moto server started on a free port and stopped afterwards.
test:
	infra/scripts/test.sh

## Formatting and clippy, warnings denied.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## Release build of every workspace binary.
build:
	$(CARGO) build --workspace --release --locked

## Cold-start benchmark: release build, then each function's init time (median of 20).
bench:
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do python3 infra/scripts/initbench.py target/release/$$f 20; done
	@ls -l $(addprefix target/release/,$(FUNCTIONS)) | awk '{printf "%-22s %6.1f MB\n", $$9, $$5/1048576}'

## Install the Python test services into .venv without starting them.
services:
	infra/scripts/services.sh install

clean:
	$(CARGO) clean
	rm -rf .venv .local
