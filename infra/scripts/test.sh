#!/usr/bin/env bash
# `make test`: install and start the test services on free ports, run every cargo test
# against them, then `make demo` against a local host (`make dev`, with its own chain and
# store) on free ports; stop everything. Fails loudly if a service cannot start.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

command -v cargo >/dev/null || { echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "test: python3 is needed for the moto test server" >&2; exit 1; }
command -v curl >/dev/null || { echo "test: curl is needed to wait for the test services" >&2; exit 1; }

svc=$(mktemp -d "${TMPDIR:-/tmp}/payorders-services.XXXXXX")
dev_pid=
stop_all() {
  if [ -n "$dev_pid" ]; then
    kill "$dev_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  infra/scripts/services.sh stop "$svc"
  rm -rf "$svc"
}
trap stop_all EXIT

infra/scripts/services.sh start "$svc"
# shellcheck disable=SC1091
. "$svc/env"

echo "test: cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml

cargo test --workspace --locked "$@"

# make demo, bounded, so it cannot rot: `make dev` (host + chain) on free ports with a
# fresh store, the demo against it, then the host and its chain stopped.
echo "test: make demo against a fresh local host"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export PAYORDERS_LOCAL_DIR="$svc/dev"
# The binary cargo test just built (with the tests' features): building it again alone
# would unify features differently and recompile half the graph.
build=cargo
[ -x target/debug/payorders ] && build=true
PORT=$port CHAIN=1 CHAIN_PORT= CARGO=$build infra/scripts/dev.sh >"$svc/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 600); do
  if grep -qs '^export API=' "$PAYORDERS_LOCAL_DIR/demo.env" && curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
  if ! kill -0 "$dev_pid" 2>/dev/null; then cat "$svc/dev.log" >&2; echo "test: make dev exited" >&2; exit 1; fi
  sleep 0.2
done
grep -qs '^export API=' "$PAYORDERS_LOCAL_DIR/demo.env" || { cat "$svc/dev.log" >&2; echo "test: make dev did not start within 120 s" >&2; exit 1; }
if ! DEMO_TIMEOUT=30 timeout 90 .venv/bin/python infra/scripts/demo.py; then
  echo "test: make demo failed; the local host's log:" >&2
  cat "$svc/dev.log" >&2
  exit 1
fi

# The checkout page in headless Chromium against the same host (bounded); the screenshot
# goes to docs/checkout.png only with UPDATE_DOCS=1, as other generated docs do.
echo "test: the checkout page in a browser"
if ! SCREENSHOT="${UPDATE_DOCS:+$root/docs/checkout.png}" infra/scripts/browser_test.sh; then
  echo "test: the browser test failed; the local host's log:" >&2
  cat "$svc/dev.log" >&2
  exit 1
fi
