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
# medians of requests/s, p50 and p99, and the ratio to the original stack's figures
# (FastAPI + SQLAlchemy + Postgres, one uvicorn worker: 120–180 creates/s, 340–380 gets/s,
# as stated in issue 14; its code is not available to run beside).
# The demo organization's hourly limits for the create and read classes are raised with
# `payorders org limit` (an organization override, as an operator would), not in code.
#
#   RUNS (5) DURATION (10) WARMUP (3) CONNECTIONS (8) THREADS (2)
#   BENCH_BIN: a payorders binary to measure instead of building one (e.g. an older build)
#   BENCH_KEEP=1 keeps the temporary directory (store, host log) and prints where it is
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

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk (Debian)" >&2
  { apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; } >/dev/null ||
    { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
fi

bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  echo "bench: release build of the local host (profile bench-host)" >&2
  # The features `make dev` builds with: the embedded store, no AWS SDK.
  cargo build --profile bench-host --locked --bin payorders -p payorders-local --no-default-features >&2
  bin=$target/bench-host/payorders
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/payorders-tput.XXXXXX")
host_pid=
cleanup() {
  if [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null; then wait "$host_pid" 2>/dev/null || true; fi
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $dir" >&2; else rm -rf "$dir"; fi
  return 0
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
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
# One order for the GETs, created the way the bench creates them.
python3 "$here/requests.py" 1 "$dir/one.txt"
IFS=$'\t' read -r sig body <"$dir/one.txt"
order_id=$(curl -sf -X POST "$url/pay-orders" -H "X-API-Key: $PAYORDERS_API_KEY" \
  -H "Authorization-Signature: $sig" -H 'Content-Type: application/json' -d "$body" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# One wrk run: prints "requests seconds rps p50 p99 non2xx socket_errors".
wrk_run() { # SECONDS ARGS...
  local secs=$1
  shift
  WRK_THREADS=$threads wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s \
    -s "$here/wrk.lua" "$url" -- "$@" | sed -n 's/^RESULT //p'
}

# Signed creates for one run: enough for twice the warm-up's rate (unsent ones are unused).
create_rate=2000
create_run() { # SECONDS
  local n=$(($1 * create_rate * 2 + 2000))
  python3 "$here/requests.py" "$n" "$dir/creates.txt"
  wrk_run "$1" create "$dir/creates.txt" "$PAYORDERS_API_KEY"
}

results=$dir/results.txt
: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: creates: warm-up ${warmup} s, then ${runs} × ${duration} s, ${conns} connections" >&2
read -r _ _ rate _ <<<"$(create_run "$warmup")"
create_rate=$(printf '%.0f' "$rate")
[ "$create_rate" -lt 500 ] && create_rate=500
for i in $(seq 1 "$runs"); do
  line=$(create_run "$duration")
  echo "  create run $i: $line" >&2
  echo "create $line" >>"$results"
done
echo "bench: gets of $order_id: warm-up ${warmup} s, then ${runs} × ${duration} s" >&2
wrk_run "$warmup" get "/pay-orders/$order_id" "$PAYORDERS_API_KEY" >/dev/null
for i in $(seq 1 "$runs"); do
  line=$(wrk_run "$duration" get "/pay-orders/$order_id" "$PAYORDERS_API_KEY")
  echo "  get run $i: $line" >&2
  echo "get $line" >>"$results"
done

python3 - "$results" "$conns" "$runs" "$duration" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" <<'EOF'
import statistics, sys
path, conns, runs, duration, load_before, load_after, cores = sys.argv[1:]
rows = {}
for line in open(path):
    kind, requests, secs, rps, p50, p99, non2xx, sock = line.split()
    rows.setdefault(kind, []).append((float(rps), float(p50), float(p99), int(non2xx), int(sock)))
original = {"create": (120, 180), "get": (340, 380)}
names = {"create": "signed SALE create (POST /pay-orders, unique bodies)", "get": "GET /pay-orders/{id} (one order)"}
print(f"{conns} connections, wrk, medians of {runs} runs of {duration} s each; {cores} cores shared with wrk "
      f"(load average {load_before} before, {load_after} after: other processes count too)")
print()
print("| request | requests/s | p50 | p99 | non-2xx / socket errors | original (stated) | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for kind in ("create", "get"):
    r = rows.get(kind, [])
    if not r:
        continue
    rps = statistics.median(x[0] for x in r)
    p50 = statistics.median(x[1] for x in r)
    p99 = statistics.median(x[2] for x in r)
    bad = sum(x[3] for x in r), sum(x[4] for x in r)
    lo, hi = original[kind]
    print(f"| {names[kind]} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {bad[0]} / {bad[1]} | {lo}–{hi}/s | ×{rps / hi:.1f}–{rps / lo:.1f} |")
EOF
# Every request must have been answered 2xx: a failed one would flatter the figures.
if awk '$7 > 0 || $8 > 0 { bad = 1 } END { exit !bad }' "$results"; then
  echo "bench: some requests failed or were not answered (see the last column)" >&2
  exit 1
fi
exit 0
