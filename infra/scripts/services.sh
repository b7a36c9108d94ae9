#!/usr/bin/env bash
# Installs and starts the services the tests need, on free loopback ports.
#
#   infra/scripts/services.sh install        create .venv (moto, standardwebhooks) and
#                                            node_modules (anvil, cast) if missing
#   infra/scripts/services.sh start DIR      start moto and anvil; write DIR/env with the endpoints
#   infra/scripts/services.sh stop DIR...    stop everything started into each DIR, at once
#   infra/scripts/services.sh install-demo   create .venv with standardwebhooks only (make demo)
#   infra/scripts/services.sh install-node   node_modules (anvil, cast) only
#   infra/scripts/services.sh install-browser
#                                            the checkout page's browser test: Playwright for
#                                            Python in .venv, Debian's chromium and zbar-tools
#                                            (apt-get; never a browser download)
#   infra/scripts/services.sh chain PORT     make dev-chain: anvil with the test token, in the
#                                            foreground until Ctrl-C
#   infra/scripts/services.sh chain-start DIR [PORT]
#                                            make dev: the same chain in the background (a free
#                                            port unless PORT); DIR/env has its URL, DIR/anvil.pid
#                                            its pid (`services.sh stop DIR` stops it)
#   infra/scripts/services.sh testnets-start DIR
#                                            an anvil per EVM testnet of the registry other
#                                            than 31337 (Base Sepolia, Sepolia), with its chain
#                                            id, so a host pointed at them (DIR/env) reads every
#                                            test chain an order can use: make fuzz
#   infra/scripts/services.sh install-fuzz   schemathesis into .venv; openapi-typescript and tsc
#                                            (node_modules)
#   infra/scripts/services.sh install-package
#                                            make package: aws-sam-cli, cargo-lambda and zig
#                                            into .venv-sam
#   infra/scripts/services.sh install-original
#                                            make bench: the original stack's stand-in
#                                            (infra/bench/original): FastAPI, uvicorn and
#                                            SQLAlchemy into .venv-original, PostgreSQL (Debian)
#   infra/scripts/services.sh install-wrk    make bench: wrk (Debian)
#   infra/scripts/services.sh free-port      a free TCP port on 127.0.0.1, for a script's own server
#
# Any service that cannot start is a hard failure with its log printed: tests never run
# against a missing service.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# `make dev` takes CHAIN=0|1; cast would read it as its --chain option.
unset CHAIN
venv="$root/.venv"
py_packages=("moto[server]==5.*" "standardwebhooks==1.*")

die() { echo "services: $*" >&2; exit 1; }

install_node() {
  local tool missing=
  for tool in anvil cast openapi-typescript tsc; do
    [ -x "$root/node_modules/.bin/$tool" ] || missing=1
  done
  if [ -n "$missing" ]; then
    command -v npm >/dev/null || die "npm is needed to install anvil (the local EVM chain for tests)"
    echo "services: installing anvil, cast, openapi-typescript and typescript (package.json) into $root/node_modules"
    (cd "$root" && npm install --no-audit --no-fund --silent) || die "npm install failed"
  fi
}

# make_venv [DIR]: a Python venv in DIR (.venv by default) unless there is one.
make_venv() {
  local dir=${1:-$venv}
  if [ ! -x "$dir/bin/python" ]; then
    echo "services: creating $dir"
    python3 -m venv "$dir" || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
}

# apt_install WHAT PACKAGE...: installs Debian's PACKAGEs (the caller's missing ones) for WHAT,
# updating the package lists only when the first try fails.
apt_install() {
  local what=$1; shift
  command -v apt-get >/dev/null || die "install $* (Debian packages) for $what"
  echo "services: installing $* (apt-get)"
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -qq "$@" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null; } \
    || die "apt-get install $* failed"
}

# pip_install VENV PACKAGE...: installs through uv (from PyPI, into .venv once), which
# resolves and unpacks in parallel and writes no bytecode up front: on a fresh clone, pip
# spent 159 s of CPU on make test's tools (mostly resolving, and compiling every module to
# .pyc), taken from the cargo build that runs beside it; uv spends about 27 s. Python
# compiles what a tool imports on first use. uv reads no pip configuration: a package
# index or wheel directory given to pip through the environment is passed on.
uv_pin=0.13.9
pip_install() {
  local target=$1; shift
  make_venv
  if [ "$("$venv/bin/uv" --version 2>/dev/null)" != "uv $uv_pin" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-compile "uv==$uv_pin" \
      || die "pip install uv==$uv_pin failed"
  fi
  local pass=() name
  for name in INDEX_URL EXTRA_INDEX_URL FIND_LINKS; do
    local pip_var="PIP_$name" uv_var="UV_$name"
    if [ -n "${!pip_var:-}" ] && [ -z "${!uv_var:-}" ]; then pass+=("$uv_var=${!pip_var}"); fi
  done
  env "${pass[@]}" "$venv/bin/uv" pip install --quiet --python "$target/bin/python" "$@" \
    || die "installing $* into $target failed"
}

# Installs `packages` into the venv unless python can already import `modules`.
pip_ensure() {
  local modules=$1; shift
  make_venv
  if ! "$venv/bin/python" -c "import $modules" 2>/dev/null; then
    echo "services: installing $* into $venv"
    pip_install "$venv" "$@"
  fi
}

# What `make demo` needs: the official Standard Webhooks library, nothing else.
install_demo() {
  pip_ensure standardwebhooks "standardwebhooks==1.*"
}

# The browser test (infra/scripts/browser_test.py): Playwright drives the system chromium
# (`playwright install` is never run), zbarimg decodes the QR code.
install_browser() {
  pip_ensure playwright "playwright==1.65.*"
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v zbarimg >/dev/null || missing+=(zbar-tools)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "the browser test" "${missing[@]}"; fi
}

install() {
  pip_ensure "moto.server, standardwebhooks" "${py_packages[@]}"
}

# The API fuzzer of make test and make fuzz, pinned (its CLI and checks change between minors).
schemathesis_pin=4.32.5
install_fuzz() {
  make_venv
  if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$schemathesis_pin" ]; then
    echo "services: installing schemathesis==$schemathesis_pin into $venv"
    pip_install "$venv" "schemathesis==$schemathesis_pin"
  fi
  install_node
}

# make package: the SAM CLI, cargo-lambda and zig (all from PyPI) in their own venv, .venv-sam:
# the SAM CLI pins boto3, click and jsonschema versions the test tools in .venv need otherwise.
install_package() {
  local sam_venv="$root/.venv-sam"
  if [ -x "$sam_venv/bin/sam" ] && [ -x "$sam_venv/bin/cargo-lambda" ] && [ -x "$sam_venv/bin/python-zig" ]; then
    return 0
  fi
  echo "services: installing aws-sam-cli, cargo-lambda and ziglang into $sam_venv"
  make_venv "$sam_venv"
  pip_install "$sam_venv" "aws-sam-cli==1.*" "cargo-lambda==1.*" "ziglang==0.*"
}

# The stand-in for the stack PayOrders replaces, which bench_throughput.sh loads beside the
# local host: the libraries its README names (FastAPI, whose documented install brings
# uvicorn[standard]; SQLAlchemy 2 with psycopg2), and Debian's PostgreSQL server.
install_original() {
  local ovenv="$root/.venv-original"
  if ! "$ovenv/bin/python" -c "import fastapi, uvicorn, sqlalchemy, psycopg2" 2>/dev/null; then
    echo "services: installing FastAPI, uvicorn, SQLAlchemy and psycopg2 into $ovenv"
    make_venv "$ovenv"
    pip_install "$ovenv" "fastapi==0.*" "uvicorn[standard]==0.*" "sqlalchemy==2.*" "psycopg2-binary==2.*"
  fi
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    apt_install "the bench's original stack (initdb, pg_ctl)" postgresql
  fi
}

# The bench's load generator.
install_wrk() {
  command -v wrk >/dev/null || apt_install "the throughput bench" wrk
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
  # TERM to every process at once, then wait for them together: anvil and moto each take
  # about 2 s to shut down, so one after another they added seconds to every `make test`.
  local dir pidfile pid pids=() alive
  for dir in "$@"; do
    for pidfile in "$dir"/*.pid; do
      [ -e "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      rm -f "$pidfile"
      kill "$pid" 2>/dev/null && pids+=("$pid")
    done
  done
  for _ in $(seq 1 50); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ "${#alive[@]}" -gt 0 ] || return 0
    pids=("${alive[@]}")
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
}

# The local chain: anvil (chain 31337) on PORT with the test token TUSD deployed at its
# registry address by anvil's account 0, in the background; DIR/env has its URL.
chain_start() {
  local dir=$1 port=${2:-}
  mkdir -p "$dir"
  install_node
  [ -n "$port" ] || port=$(free_port)
  local url="http://127.0.0.1:$port"
  if curl -s -o /dev/null "$url"; then die "something already listens on port $port (pick another CHAIN_PORT, or leave it unset for a free one)"; fi
  "$root/node_modules/.bin/anvil" --host 127.0.0.1 --port "$port" >"$dir/anvil.log" 2>&1 &
  echo $! >"$dir/anvil.pid"
  wait_rpc "anvil" "$url" "$dir/anvil.pid" "$dir/anvil.log"
  local cast="$root/node_modules/.bin/cast"
  local code; code=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytecode"])' "$root/infra/contracts/TestToken.json")
  local args; args=$("$cast" abi-encode "constructor(uint256)" 1000000000000)
  "$cast" send --rpc-url "$url" --private-key "$DEV_KEY" --create "${code}${args#0x}" >/dev/null \
    || { stop "$dir"; die "deploying the test token failed"; }
  [ "$("$cast" code --rpc-url "$url" "$TUSD")" != "0x" ] \
    || { stop "$dir"; die "the test token is not at its registry address"; }
  echo "export PAYORDERS_RPC_31337=$url" >"$dir/env"
  cat <<INFO
Local chain 31337 on $url (anvil; log in $dir/anvil.log)
  TUSD (test token, 6 decimals)  $TUSD
  payer (anvil account 0)        0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266  1,000,000 TUSD, 10,000 ETH
  payer's key                    $DEV_KEY
INFO
}

# A node for each EVM testnet of the registry but the local chain (which chain_start runs with
# the test token): an empty anvil answering with that chain id, so that no test chain an
# order can name is unreadable. DIR/env exports PAYORDERS_RPC_<id> for each.
testnets_start() {
  local dir=$1
  mkdir -p "$dir"
  install_node
  : >"$dir/env"
  local id port
  for id in $(python3 -c 'import json,sys; print(" ".join(str(c["id"]) for c in json.load(open(sys.argv[1]))["chains"] if c["testnet"] and c["family"] == "evm" and c["id"] != 31337))' "$root/shared/src/registry/chains.json"); do
    port=$(free_port)
    "$root/node_modules/.bin/anvil" --host 127.0.0.1 --port "$port" --chain-id "$id" --silent >"$dir/anvil-$id.log" 2>&1 &
    echo $! >"$dir/anvil-$id.pid"
    wait_rpc "anvil (chain $id)" "http://127.0.0.1:$port" "$dir/anvil-$id.pid" "$dir/anvil-$id.log"
    echo "export PAYORDERS_RPC_$id=http://127.0.0.1:$port" >>"$dir/env"
  done
}

# anvil's account 0 (a well-known development key) and the token it deploys first.
DEV_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
TUSD=0x5FbDB2315678afecb367f032d93F642f64180aa3

# `make dev-chain`: the chain alone, in the foreground until interrupted.
chain() {
  local port=$1 dir="$root/.local/chain"
  trap 'stop "$dir"; exit 0' INT TERM
  chain_start "$dir" "$port"
  echo "Run the API against it:  PAYORDERS_RPC_31337=http://127.0.0.1:$port CHAIN=0 make dev"
  echo "Ctrl-C stops the chain."
  wait "$(cat "$dir/anvil.pid")" || true
}

case "${1:-}" in
  install) install; install_node ;;
  install-demo) install_demo ;;
  install-node) install_node ;;
  install-fuzz) install_fuzz ;;
  install-package) install_package ;;
  install-browser) install_browser ;;
  install-original) install_original ;;
  install-wrk) install_wrk ;;
  free-port) free_port ;;
  testnets-start) testnets_start "${2:?usage: services.sh testnets-start DIR}" ;;
  chain-start) chain_start "${2:?usage: services.sh chain-start DIR [PORT]}" "${3:-}" ;;
  chain) chain "${2:?usage: services.sh chain PORT}" ;;
  start) start "${2:?usage: services.sh start DIR}" ;;
  stop) shift; stop "${@:?usage: services.sh stop DIR...}" ;;
  *) die "usage: services.sh install|install-demo|install-node|install-fuzz|install-browser|install-original|install-wrk|free-port|start DIR|stop DIR...|chain PORT|chain-start DIR [PORT]|testnets-start DIR" ;;
esac
