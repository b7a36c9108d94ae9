#!/usr/bin/env bash
# `make test`: install and start the test services on free ports, build every test, then run
# two sides at once and fail if either fails:
#   - every cargo test, against the test services;
#   - the local-host stages, against a `make dev` (host + chain, a fresh store) on free ports:
#     make demo, the schemathesis stage (fuzz.sh quick) and the generated client (client_check.sh).
# Stops everything. Fails loudly if a service or tool cannot start.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

command -v cargo >/dev/null || { echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "test: python3 is needed for the moto test server" >&2; exit 1; }
command -v curl >/dev/null || { echo "test: curl is needed to wait for the test services" >&2; exit 1; }

# shellcheck source=infra/scripts/devhost.sh
. infra/scripts/devhost.sh
svc=$(mktemp -d "${TMPDIR:-/tmp}/payorders-services.XXXXXX")
host_side=
stop_all() {
  if [ -n "$host_side" ]; then
    kill "$host_side" 2>/dev/null || true
    wait "$host_side" 2>/dev/null || true
  fi
  [ -d "$svc/dev" ] && devhost_stop "$svc/dev"
  infra/scripts/services.sh stop "$svc"
  rm -rf "$svc"
}
trap stop_all EXIT

infra/scripts/services.sh start "$svc"
# shellcheck disable=SC1091
. "$svc/env"

echo "test: cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml

# Everything compiled first: the host side runs the payorders binary this builds (with the
# tests' features; building it alone would unify features differently).
cargo test --workspace --locked --no-run "$@"

# The local-host side, in the background beside cargo test; its output is shown after.
host_stages() {
  set -euo pipefail
  local started=$SECONDS
  trap 'echo "test: the local-host stages took $((SECONDS - started)) s"' EXIT
  echo "test: make demo against a fresh local host"
  devhost_start "$svc/dev"
  export PAYORDERS_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/payorders"
  if ! DEMO_TIMEOUT=30 timeout 90 .venv/bin/python infra/scripts/demo.py; then
    echo "test: make demo failed; the local host's log:" >&2
    cat "$svc/dev/dev.log" >&2
    return 1
  fi
  echo "test: schemathesis against the same host"
  infra/scripts/fuzz.sh quick "$svc/dev"
  echo "test: a client generated from docs/openapi.json compiles"
  infra/scripts/client_check.sh
}
host_stages >"$svc/host-stages.log" 2>&1 &
host_side=$!
# cargo test is the longer side: the host side yields the CPU to it (its children inherit).
renice -n 10 -p "$host_side" >/dev/null 2>&1 || true

cargo_status=0
cargo_started=$SECONDS
cargo test --workspace --locked "$@" || cargo_status=$?
echo "test: cargo test took $((SECONDS - cargo_started)) s"
host_status=0
wait "$host_side" || host_status=$?
host_side=
echo
echo "=== the local-host stages (make demo, schemathesis, generated client) ==="
cat "$svc/host-stages.log"
if [ "$cargo_status" != 0 ] || [ "$host_status" != 0 ]; then
  [ "$cargo_status" = 0 ] || echo "test: cargo test failed (exit $cargo_status)" >&2
  [ "$host_status" = 0 ] || echo "test: the local-host stages failed (exit $host_status)" >&2
  exit 1
fi
echo "test: cargo test, make demo, schemathesis and the generated client all passed"
