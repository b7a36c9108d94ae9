#!/usr/bin/env bash
# `make test`: install and start the test services on free ports, build every test, then run
# two sides at once and fail if either fails:
#   - every cargo test, against the test services;
#   - the other stages: `sam validate --lint` of template.yaml (cfn-lint's rules, the SAM
#     transform included), then against a `make dev` (host + chain, a fresh store) on free ports
#     make demo, the checkout page in headless Chromium
#     (browser_test.sh), the schemathesis stage (fuzz.sh quick), and the
#     generated client (client_check.sh).
# Each deployed bundle is also checked on its own features (cargo check -p BUNDLE).
# Stops everything. Fails loudly if a service or tool cannot start.
set -euo pipefail
# The project's venvs are installed without bytecode (services.sh): Python compiles what a
# tool imports on its first run and keeps it, unless PYTHONDONTWRITEBYTECODE says not to,
# and then compiles it again on every run (sam validate: 13 s instead of 6).
unset PYTHONDONTWRITEBYTECODE

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
  # The local host, its chains and the test services, all at once.
  devhost_stop "$svc/dev" "$svc" || true
  rm -rf "$svc"
}
trap stop_all EXIT

# Every tool the stages use (Python packages, npm packages, Debian's chromium) installs while
# cargo compiles: on a fresh clone both take minutes, and neither needs the other.
( infra/scripts/services.sh install && infra/scripts/services.sh install-fuzz \
    && infra/scripts/services.sh install-browser && infra/scripts/services.sh install-package ) \
  >"$svc/install.log" 2>&1 &
installs=$!

# The test build writes no incremental caches: they cost a fresh clone time (CI builds every
# workspace crate once) and a re-run only helps after an edit; `cargo test -p …` is the edit
# loop, and keeps them. CARGO_INCREMENTAL=1 make test brings them back.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Everything compiled first: the host side runs the payorders binary this builds (with the
# tests' features; building it alone would unify features differently). The list of test
# binaries (package directory, executable) comes from cargo's own build messages.
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics "$@" \
  | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' >"$svc/test-binaries"

# Each deployed bundle checked on its own, with only the domain crate's features it asks
# for: the test build above unifies every crate's features, so code that compiles only with
# a feature some other crate turns on would pass the tests and break `make package`.
# (About 110 s on a fresh clone, a second or two warm.)
for bundle in bundles/*/; do
  cargo check --locked --quiet -p "$(basename "$bundle")"
done

if ! wait "$installs"; then
  cat "$svc/install.log" >&2
  echo "test: installing the test tools failed" >&2
  exit 1
fi
cat "$svc/install.log"
infra/scripts/services.sh start "$svc"
# shellcheck disable=SC1091
. "$svc/env"

# The other side, in the background beside cargo test; its output is shown after.
host_stages() {
  set -euo pipefail
  # Global, not local: the EXIT trap runs after the function's locals are gone.
  host_started=$SECONDS
  stage() { echo "test: [$((SECONDS - host_started)) s] $*"; }
  # logged LOG COMMAND...: runs it with its output and, last, its time in LOG.
  logged() {
    local log=$1 started=$SECONDS status=0
    shift
    "$@" >"$log" 2>&1 || status=$?
    echo "(done in $((SECONDS - started)) s, exit $status)" >>"$log"
    return "$status"
  }
  trap 'echo "test: the other side took $((SECONDS - host_started)) s"' EXIT
  # The SAM CLI's check of the template, no build: cfn-lint's rules on it, the SAM transform
  # included (a rule it matches fails the check). Meanwhile: the host's start and the demo
  # mostly wait on the chain.
  SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint --template template.yaml >"$svc/sam.log" 2>&1 &
  local sam=$!
  # The generated client needs no host either.
  infra/scripts/client_check.sh >"$svc/client.log" 2>&1 &
  local client=$!
  stage "a fresh local host (its chains and store)"
  devhost_start "$svc/dev"
  # Three checks against the same host at once, each shown whole when all are done:
  #   - make demo: a paid order on the local chain and its webhook (the demo organization);
  #   - the checkout page in headless Chromium (bounded; the screenshot goes to
  #     docs/checkout.png only with UPDATE_DOCS=1, as other generated docs do), the demo
  #     organization too, paid through the sandbox;
  #   - schemathesis, in an organization of its own (whatever it changes stays there).
  # The demo and the page mostly wait on the chain and their event streams, schemathesis on
  # the CPU; each follows only its own orders, and schemathesis calls from its own loopback
  # address (fuzz_hooks.py), so the page's per-address budget of views is its own.
  stage "the local host answers; make demo, the checkout page in a browser and schemathesis"
  export PAYORDERS_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/payorders"
  DEMO_TIMEOUT=30 logged "$svc/demo.log" timeout 90 .venv/bin/python infra/scripts/demo.py &
  local demo=$!
  SCREENSHOT="${UPDATE_DOCS:+$root/docs/checkout.png}" \
    logged "$svc/browser.log" infra/scripts/browser_test.sh &
  local browser=$!
  logged "$svc/fuzz.log" infra/scripts/fuzz.sh quick "$svc/dev" &
  local fuzz=$!
  # Each check's output, once it is done; any failure fails the side after all are shown.
  local failed=
  report() {
    local what=$1 pid=$2 log=$3
    stage "$what"
    if wait "$pid"; then
      # The SAM CLI's banner and colours are noise.
      tr -d '\033' <"$log" | sed 's/\[[0-9;]*m//g' \
        | grep -v -e '^\s*$' -e 'Experimental features' -e 'aws.amazon.com/service-terms' || true
    else
      cat "$log" >&2
      echo "test: $what: failed" >&2
      failed=1
    fi
  }
  report "make demo" "$demo" "$svc/demo.log"
  report "the checkout page in a browser" "$browser" "$svc/browser.log"
  report "schemathesis" "$fuzz" "$svc/fuzz.log"
  if [ -n "$failed" ]; then
    echo "test: the local host's log:" >&2
    cat "$svc/dev/dev.log" >&2
  fi
  report "a client generated from docs/openapi.json compiles" "$client" "$svc/client.log"
  report "sam validate --lint template.yaml" "$sam" "$svc/sam.log"
  [ -z "$failed" ]
}
host_stages >"$svc/host-stages.log" 2>&1 &
host_side=$!

# The test binaries run at once, each from its package's directory as cargo test would run
# them, 8 tests at a time in each: most tests wait on the chain, moto or a host, not the CPU.
# At a lower priority than the other side: its schemathesis run is one Python thread that
# needs the CPU, and is the longer path; the tests take whatever it leaves.
cargo_status=0
cargo_started=$SECONDS
pids=()
while IFS=$'\t' read -r dir exe; do
  ( cd "$dir" && RUST_TEST_THREADS=${RUST_TEST_THREADS:-8} nice -n 4 "$exe" >"$svc/$(basename "$exe").log" 2>&1 ) &
  pids+=("$!:$exe")
done <"$svc/test-binaries"
passed=0 failed=0
for entry in "${pids[@]}"; do
  pid=${entry%%:*} exe=${entry#*:}
  status=0
  wait "$pid" || status=$?
  echo "     Running $exe"
  cat "$svc/$(basename "$exe").log"
  [ "$status" = 0 ] || { cargo_status=$status; echo "test: $(basename "$exe") failed (exit $status)" >&2; }
  counts=$(grep -E '^test result:' "$svc/$(basename "$exe").log" | tail -1 || true)
  p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$counts") f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$counts")
  passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
done
[ "${#pids[@]}" -gt 0 ] || { echo "test: cargo built no test binary" >&2; cargo_status=1; }
echo "test: cargo tests: $passed passed, $failed failed, in $((SECONDS - cargo_started)) s"
host_status=0
wait "$host_side" || host_status=$?
host_side=
echo
echo "=== the other side: sam validate --lint, make demo, the checkout page, schemathesis, the generated client ==="
cat "$svc/host-stages.log"
if [ "$cargo_status" != 0 ] || [ "$host_status" != 0 ]; then
  [ "$cargo_status" = 0 ] || echo "test: cargo test failed (exit $cargo_status)" >&2
  [ "$host_status" = 0 ] || echo "test: the other side (sam validate --lint, demo, browser, schemathesis, client) failed (exit $host_status)" >&2
  exit 1
fi
echo "test: cargo test, sam validate --lint (cfn-lint), make demo, the checkout page in a browser, schemathesis and the generated client all passed"
