#!/usr/bin/env bash
# Installs and starts the services the tests need, on free loopback ports.
#
#   infra/scripts/services.sh install        create .venv (moto, cfn-lint, standardwebhooks) and
#                                            node_modules (anvil) if missing
#   infra/scripts/services.sh start DIR      start moto and anvil; write DIR/env with the endpoints
#   infra/scripts/services.sh stop DIR       stop everything started into DIR
#
# Any service that cannot start is a hard failure with its log printed: tests never run
# against a missing service.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
py_packages=("moto[server]==5.*" "cfn-lint==1.*" "standardwebhooks==1.*")

die() { echo "services: $*" >&2; exit 1; }

install_node() {
  if [ ! -x "$root/node_modules/.bin/anvil" ]; then
    command -v npm >/dev/null || die "npm is needed to install anvil (the local EVM chain for tests)"
    echo "services: installing anvil (npm @foundry-rs/anvil-linux-amd64) into $root/node_modules"
    (cd "$root" && npm install --no-audit --no-fund --silent) || die "npm install failed"
  fi
}

install() {
  if [ ! -x "$venv/bin/python" ]; then
    echo "services: creating $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (install python3-venv)"
  fi
  if ! "$venv/bin/python" -c "import moto.server, cfnlint, standardwebhooks" 2>/dev/null; then
    echo "services: installing ${py_packages[*]} into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_packages[@]}" \
      || die "pip install failed"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http NAME URL PIDFILE LOG: poll until URL answers, fail with the log if the process dies.
wait_http() {
  local name=$1 url=$2 pid=$3 log=$4
  for _ in $(seq 1 150); do
    if curl -s -o /dev/null "$url"; then return 0; fi
    if ! kill -0 "$(cat "$pid")" 2>/dev/null; then
      cat "$log" >&2; die "$name exited during start-up"
    fi
    sleep 0.2
  done
  cat "$log" >&2; die "$name did not answer at $url within 30 s"
}

# wait_rpc NAME URL PIDFILE LOG: poll a JSON-RPC endpoint until eth_chainId answers.
wait_rpc() {
  local name=$1 url=$2 pid=$3 log=$4
  for _ in $(seq 1 150); do
    if curl -s -X POST -H 'content-type: application/json' \
      -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$url" | grep -q result; then
      return 0
    fi
    if ! kill -0 "$(cat "$pid")" 2>/dev/null; then
      cat "$log" >&2; die "$name exited during start-up"
    fi
    sleep 0.2
  done
  cat "$log" >&2; die "$name did not answer at $url within 30 s"
}

start() {
  local dir=$1
  mkdir -p "$dir"
  install
  local port; port=$(free_port)
  # One request at a time: see moto_serial.py for why.
  "$venv/bin/python" "$root/infra/scripts/moto_serial.py" 127.0.0.1 "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  wait_http "moto server" "http://127.0.0.1:$port/moto-api/" "$dir/moto.pid" "$dir/moto.log"
  install_node
  local anvil_port; anvil_port=$(free_port)
  "$root/node_modules/.bin/anvil" --host 127.0.0.1 --port "$anvil_port" --silent >"$dir/anvil.log" 2>&1 &
  echo $! >"$dir/anvil.pid"
  wait_rpc "anvil" "http://127.0.0.1:$anvil_port" "$dir/anvil.pid" "$dir/anvil.log"
  cat >"$dir/env" <<ENV
export PAYORDERS_TEST_AWS_ENDPOINT=http://127.0.0.1:$port
export PAYORDERS_TEST_ANVIL_URL=http://127.0.0.1:$anvil_port
ENV
  echo "services: moto server on 127.0.0.1:$port (pid $(cat "$dir/moto.pid")), anvil on 127.0.0.1:$anvil_port (pid $(cat "$dir/anvil.pid"))"
}

stop() {
  local dir=$1
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  install) install; install_node ;;
  start) start "${2:?usage: services.sh start DIR}" ;;
  stop) stop "${2:?usage: services.sh stop DIR}" ;;
  *) die "usage: services.sh install|start DIR|stop DIR" ;;
esac
