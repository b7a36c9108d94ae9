#!/usr/bin/env bash
# Throughput of the local host (docs/performance.md, "Throughput of the local host"): the
# release-built host (profile bench-host: opt-level 3, thin LTO) on a fresh file store in a
# temporary directory, durable (WAL, synchronous=FULL), started as `make dev` starts it
# (`payorders serve`, embedded store, the demo organization it creates; no chain: neither
# route reads one). wrk (Debian's package, installed when missing) drives it, 8 connections:
#   (a) signed SALE creates: POST /pay-orders, every body unique, each under its own v2
#       signature and nonce (infra/bench/throughput/requests.py, generated before each run);
#   (b) GET /pay-orders/{id} of one order, with the API key.
# Each is warmed up (WARMUP s) and then run RUNS times for DURATION s; the table has the
# medians of requests/s, p50 and p99. The same load goes, run by run in turn, to a stand-in
# for the original stack (infra/bench/original: its two routes rebuilt on FastAPI +
# SQLAlchemy + PostgreSQL, one uvicorn worker, as its README runs it; the original's own
# code is not in any package registry), so the ratio is of two figures from the same run on
# the same machine. The original's figures as stated in issue 14 (120–180 creates/s,
# 340–380 gets/s, measured on this kind of machine) are printed beside.
# The demo organization's hourly limits for the create and read classes are raised with
# `payorders org limit` (an organization override, as an operator would), not in code.
#
#   RUNS (5) DURATION (10) WARMUP (3) CONNECTIONS (8) THREADS (2)
#   BENCH_BIN: a payorders binary to measure instead of building one (e.g. an older build)
#   BENCH_KEEP=1 keeps the temporary directory (store, host log) and prints where it is
#   ORIGINAL=0 leaves out the original stack's stand-in
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-5}
duration=${DURATION:-10}
warmup=${WARMUP:-3}
conns=${CONNECTIONS:-8}
threads=${THREADS:-2}
target=${CARGO_TARGET_DIR:-$root/target}
here=infra/bench/throughput

infra/scripts/services.sh install-wrk >&2

bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  echo "bench: release build of the local host (profile bench-host)" >&2
  # The features `make dev` builds with: the embedded store, no AWS SDK.
  cargo build --profile bench-host --locked --bin payorders -p payorders-local --no-default-features >&2
  bin=$target/bench-host/payorders
fi

original=${ORIGINAL:-1}
if [ "$original" = 1 ]; then infra/scripts/services.sh install-original >&2; fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/payorders-tput.XXXXXX")
host_pid=
orig_pid=
pg_data=
# PostgreSQL refuses to run as root: as root, its commands run as Debian's postgres user.
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
pg_bin=$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -1 || true)
cleanup() {
  if [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null; then wait "$host_pid" 2>/dev/null || true; fi
  if [ -n "$orig_pid" ] && kill "$orig_pid" 2>/dev/null; then wait "$orig_pid" 2>/dev/null || true; fi
  if [ -n "$pg_data" ]; then "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true; fi
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $dir" >&2; else rm -rf "$dir"; fi
  return 0
}
trap cleanup EXIT

free_port() { infra/scripts/services.sh free-port; }
port=$(free_port)
export PAYORDERS_LOCAL_DIR=$dir
unset PAYORDERS_DEMO_API_KEY PAYORDERS_DEMO_API_SECRET
"$bin" serve --port "$port" >"$dir/host.log" 2>&1 &
host_pid=$!
for _ in $(seq 1 300); do
  grep -qs '^export API=' "$dir/demo.env" && curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  kill -0 "$host_pid" 2>/dev/null || { cat "$dir/host.log" >&2; exit 1; }
  sleep 0.1
done
# shellcheck disable=SC1091
. "$dir/demo.env"
for class in create read; do
  "$bin" org limit --org "$PAYORDERS_ORG_ID" --class "$class" --per-hour 1000000000 >/dev/null
done

url=http://127.0.0.1:$port

# The original stack's stand-in: a fresh PostgreSQL cluster (durable defaults: fsync and
# synchronous_commit on) in the temporary directory, one organization, one uvicorn worker.
if [ "$original" = 1 ]; then
  [ -n "$pg_bin" ] || { echo "bench: PostgreSQL's initdb is missing" >&2; exit 1; }
  chmod 755 "$dir"
  mkdir "$dir/pg"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres "$dir/pg"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$dir/pg/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  pg_port=$(free_port)
  pg_data=$dir/pg/data
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$dir/pg/server.log" -w \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null ||
    { cat "$dir/pg/server.log" >&2; exit 1; }
  "${as_pg[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres payorders
  export DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:$pg_port/payorders
  orig_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  orig_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  (cd infra/bench/original && "$root/.venv-original/bin/python" app.py seed "$orig_key" "$orig_secret")
  orig_port=$(free_port)
  (cd infra/bench/original && exec "$root/.venv-original/bin/uvicorn" app:app --host 127.0.0.1 \
    --port "$orig_port" --workers 1 --log-level warning) >"$dir/original.log" 2>&1 &
  orig_pid=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$orig_port/docs" && break
    kill -0 "$orig_pid" 2>/dev/null || { cat "$dir/original.log" >&2; exit 1; }
    sleep 0.1
  done
  orig_url=http://127.0.0.1:$orig_port
  PAYORDERS_API_KEY=$orig_key PAYORDERS_API_SECRET=$orig_secret python3 "$here/requests.py" 1 "$dir/one-orig.txt" original
  IFS=$'\t' read -r sig body <"$dir/one-orig.txt"
  orig_order_id=$(curl -sf -X POST "$orig_url/pay-orders/" -H "Authorization: $sig" \
    -H 'Content-Type: application/json' -d "$body" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
fi
# One order for the GETs, created the way the bench creates them.
python3 "$here/requests.py" 1 "$dir/one.txt"
IFS=$'\t' read -r sig body <"$dir/one.txt"
order_id=$(curl -sf -X POST "$url/pay-orders" -H "X-API-Key: $PAYORDERS_API_KEY" \
  -H "Authorization-Signature: $sig" -H 'Content-Type: application/json' -d "$body" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# One wrk run: prints "requests seconds rps p50 p99 non2xx socket_errors".
wrk_run() { # URL SECONDS ARGS...
  local at=$1 secs=$2
  shift 2
  WRK_THREADS=$threads wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s \
    -s "$here/wrk.lua" "$at" -- "$@" | sed -n 's/^RESULT //p'
}

# Signed creates for one run: enough for twice the warm-up's rate (unsent ones are unused).
create_rate=2000
create_run() { # SECONDS
  local n=$(($1 * create_rate * 2 + 2000))
  python3 "$here/requests.py" "$n" "$dir/creates.txt"
  wrk_run "$url" "$1" create "$dir/creates.txt" "$PAYORDERS_API_KEY"
}
orig_create_run() { # SECONDS
  local n=$(($1 * 1000 + 2000))
  PAYORDERS_API_KEY=$orig_key PAYORDERS_API_SECRET=$orig_secret python3 "$here/requests.py" "$n" "$dir/creates-orig.txt" original
  wrk_run "$orig_url" "$1" create "$dir/creates-orig.txt" "$orig_key" Authorization /pay-orders/
}
get_run() { wrk_run "$url" "$1" get "/pay-orders/$order_id" "$PAYORDERS_API_KEY"; }
orig_get_run() { wrk_run "$orig_url" "$1" get "/pay-orders/$orig_order_id" "$orig_key"; }

# measure KIND RUNNER ORIGINAL_RUNNER: RUNS runs of DURATION s, each of ours followed by the
# same against the stand-in, their result lines kept as KIND and KIND-original.
measure() {
  local kind=$1 ours=$2 theirs=$3 i line
  for i in $(seq 1 "$runs"); do
    line=$("$ours" "$duration")
    echo "  $kind run $i: $line" >&2
    echo "$kind $line" >>"$results"
    if [ "$original" = 1 ]; then
      line=$("$theirs" "$duration")
      echo "  original $kind run $i: $line" >&2
      echo "$kind-original $line" >>"$results"
    fi
  done
}

results=$dir/results.txt
: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: creates: warm-up ${warmup} s, then ${runs} × ${duration} s, ${conns} connections" >&2
read -r _ _ rate _ <<<"$(create_run "$warmup")"
create_rate=$(printf '%.0f' "$rate")
[ "$create_rate" -lt 500 ] && create_rate=500
if [ "$original" = 1 ]; then orig_create_run "$warmup" >/dev/null; fi
measure create create_run orig_create_run
echo "bench: gets of $order_id: warm-up ${warmup} s, then ${runs} × ${duration} s" >&2
get_run "$warmup" >/dev/null
if [ "$original" = 1 ]; then orig_get_run "$warmup" >/dev/null; fi
measure get get_run orig_get_run

python3 - "$results" "$conns" "$runs" "$duration" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" <<'EOF'
import statistics, sys
path, conns, runs, duration, load_before, load_after, cores = sys.argv[1:]
rows = {}
for line in open(path):
    kind, requests, secs, rps, p50, p99, non2xx, sock = line.split()
    rows.setdefault(kind, []).append((float(rps), float(p50), float(p99), int(non2xx), int(sock)))
stated = {"create": (120, 180), "get": (340, 380)}
names = {"create": "signed SALE create (POST /pay-orders, unique bodies)", "get": "GET /pay-orders/{id} (one order)"}
print(f"{conns} connections, wrk, medians of {runs} runs of {duration} s each, ours and the original stack's "
      f"stand-in in turn; {cores} cores shared with wrk (load average {load_before} before, {load_after} after: "
      f"other processes count too)")
print()
print("| request | stack | requests/s | p50 | p99 | non-2xx / socket errors |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
median = {}
for kind in ("create", "get"):
    for stack, key in (("PayOrders (local host)", kind), ("original's stand-in (FastAPI, PostgreSQL)", kind + "-original")):
        r = rows.get(key, [])
        if not r:
            continue
        rps = statistics.median(x[0] for x in r)
        median[key] = rps
        p50 = statistics.median(x[1] for x in r)
        p99 = statistics.median(x[2] for x in r)
        bad = sum(x[3] for x in r), sum(x[4] for x in r)
        print(f"| {names[kind]} | {stack} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {bad[0]} / {bad[1]} |")
print()
print("| request | ratio to the stand-in, same run | original as stated (issue 14) | ratio to it |")
print("| --- | ---: | ---: | ---: |")
for kind in ("create", "get"):
    if kind not in median:
        continue
    rps = median[kind]
    same = f"×{rps / median[kind + '-original']:.1f}" if kind + "-original" in median else "not run"
    lo, hi = stated[kind]
    print(f"| {names[kind]} | {same} | {lo}–{hi}/s | ×{rps / hi:.1f}–{rps / lo:.1f} |")
EOF
# Every request must have been answered 2xx: a failed one would flatter the figures.
if awk '$7 > 0 || $8 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "bench: some requests failed or were not answered (see the last column)" >&2
  exit 1
fi
exit 0
