#!/usr/bin/env bash
# `make dev`: the local host on 127.0.0.1:$PORT with the embedded store in $PAYORDERS_LOCAL_DIR
# (.local), and beside it a local EVM chain (anvil, chain 31337, the test token deployed) on
# $CHAIN_PORT or a free port. CHAIN=0 leaves the chain out. Both stop together (Ctrl-C, or a
# TERM to this script). The host writes $PAYORDERS_LOCAL_DIR/demo.env: the demo credentials,
# API and the chain's RPC URL.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
port=${PORT:-3000}
chain=${CHAIN:-1}
unset CHAIN # cast (the chain's CLI) would read it as its --chain option
chain_port=${CHAIN_PORT:-}
dir=${PAYORDERS_LOCAL_DIR:-.local}
cargo=${CARGO:-cargo}
export PAYORDERS_LOCAL_DIR=$dir

host_pid= build_pid=
cleanup() {
  for pid in $build_pid $host_pid; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [ "$chain" != 0 ] && infra/scripts/services.sh stop "$dir/chain"
  return 0
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# First run: the chain tools (npm) and make demo's one Python library install while cargo
# builds, instead of after it.
installs=()
if [ "$chain" != 0 ]; then
  infra/scripts/services.sh install-node >"${TMPDIR:-/tmp}/payorders-dev-node.$$.log" 2>&1 &
  installs+=("$!:node")
fi
infra/scripts/services.sh install-demo >"${TMPDIR:-/tmp}/payorders-dev-py.$$.log" 2>&1 &
installs+=("$!:py")
# In the background so that a TERM stops it too (a script only handles signals between commands).
# Without the AWS adapters: the embedded store needs none of the AWS SDK, which is the
# largest part of a first build (`cargo build --bin payorders` has them, for --store dynamodb).
$cargo build --bin payorders --no-default-features &
build_pid=$!
wait "$build_pid"
build_pid=
for entry in "${installs[@]}"; do
  pid=${entry%%:*} what=${entry##*:}
  log="${TMPDIR:-/tmp}/payorders-dev-$what.$$.log"
  if ! wait "$pid"; then
    cat "$log" >&2
    [ "$what" = node ] && { echo "dev: installing anvil failed (CHAIN=0 make dev runs without the chain)" >&2; exit 1; }
    echo "dev: installing standardwebhooks failed; make demo will try again" >&2
  fi
  rm -f "$log"
done

if [ "$chain" != 0 ]; then
  infra/scripts/services.sh chain-start "$dir/chain" "$chain_port"
  # shellcheck disable=SC1091
  . "$dir/chain/env"
  echo
fi
"${CARGO_TARGET_DIR:-target}/debug/payorders" serve --port "$port" &
host_pid=$!
wait "$host_pid"
