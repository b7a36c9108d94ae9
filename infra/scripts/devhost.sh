# Sourced by test.sh and fuzz.sh: a `make dev` (local host + its own chain) on a free port
# with a fresh store, in the background, for a stage to run against.
#
#   devhost_start DIR   start it with its store, demo.env and log (DIR/dev.log) in DIR; exports
#                       PAYORDERS_LOCAL_DIR=DIR, sets devhost_port; returns once the host
#                       answers and demo.env names it, fails (log printed) otherwise. Beside the
#                       local chain, a node for each other EVM testnet (services.sh
#                       testnets-start): every test chain an order can name is readable, so a
#                       CHAIN_UNAVAILABLE (503) there is a fault, not a missing node.
#   devhost_stop DIR [OTHER...]
#                       stop it, its chain and the testnet nodes, and the services started
#                       into each OTHER dir, all at once (DIR/dev.pid; a no-op when none
#                       runs; safe from another shell than the one that started it)
#
# Reuses the payorders binary cargo built when there is one: building it again alone would
# unify features differently and recompile half the graph.

devhost_port=

devhost_start() {
  local dir=$1
  mkdir -p "$dir"
  infra/scripts/services.sh testnets-start "$dir/testnets" >/dev/null || return 1
  # shellcheck disable=SC1091
  . "$dir/testnets/env"
  devhost_port=$(infra/scripts/services.sh free-port)
  export PAYORDERS_LOCAL_DIR=$dir
  local build=cargo
  [ -x "${CARGO_TARGET_DIR:-target}/debug/payorders" ] && build=true
  # Event streams end after 1 s (30 s by default): the fuzz stage's stream requests end
  # quickly, and the browser test's page reconnects with Last-Event-ID many times.
  PAYORDERS_SSE_LIFETIME_SECS=${PAYORDERS_SSE_LIFETIME_SECS:-1} \
    PORT=$devhost_port CHAIN=1 CHAIN_PORT= CARGO=$build infra/scripts/dev.sh >"$dir/dev.log" 2>&1 &
  echo $! >"$dir/dev.pid"
  local pid=$!
  for _ in $(seq 1 600); do
    if grep -qs '^export API=' "$dir/demo.env" && curl -s -o /dev/null "http://127.0.0.1:$devhost_port/"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/dev.log" >&2; echo "make dev exited during start-up" >&2; return 1
    fi
    sleep 0.2
  done
  cat "$dir/dev.log" >&2; echo "make dev did not start within 120 s" >&2; return 1
}

devhost_stop() {
  local dir=$1
  shift
  # TERM to dev.sh (which stops the host and its chain), the testnet nodes and whatever else
  # the caller names (DIRs of services.sh start), all at once.
  infra/scripts/services.sh stop "$dir" "$dir/testnets" "$@"
}
