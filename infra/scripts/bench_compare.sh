#!/usr/bin/env bash
# Two builds of the local host under the same load, interleaved (docs/performance.md,
# "Comparing two builds"): on a machine whose speed drifts from minute to minute (a shared
# VM), two separate bench_throughput.sh runs can differ by 2× for the same binary, so a
# change is measured against its parent here instead:
#   - both hosts run at once, each on a fresh durable store in its own temporary
#     directory, with the demo organization's create/read limits raised as in
#     bench_throughput.sh;
#   - ROUNDS times, A then B run the same kind of load for DURATION s each (creates first,
#     then gets of one order), 8 connections, wrk; the host that is not measured is idle;
#   - the table has each build's medians (requests/s, p50, p99, the host's own CPU time per
#     request from /proc) and the median of the B/A ratios of the pairs, which drift
#     cancels out of.
#
#   infra/scripts/bench_compare.sh A_BIN B_BIN     (e.g. a build of main, and of a change)
#   ROUNDS (5) DURATION (5 s) CONNECTIONS (8) THREADS (2)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
[ $# -eq 2 ] || { echo "usage: $0 A_BIN B_BIN" >&2; exit 2; }
rounds=${ROUNDS:-5}
secs=${DURATION:-5}
conns=${CONNECTIONS:-8}
threads=${THREADS:-2}
here=infra/bench/throughput
command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/payorders-compare.XXXXXX")
pids=()
cleanup() {
  # Every host, even when the first one's wait reports its SIGTERM (set -e would stop here).
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
  return 0
}
trap cleanup EXIT
unset PAYORDERS_DEMO_API_KEY PAYORDERS_DEMO_API_SECRET

# Starts build $2 as host $1 (A or B): its store, port, key and one order to get.
start() {
  local name=$1 bin=$2 dir=$work/$1 port
  mkdir -p "$dir"
  port=$(infra/scripts/services.sh free-port)
  PAYORDERS_LOCAL_DIR=$dir "$bin" serve --port "$port" >"$dir/host.log" 2>&1 &
  pids+=($!)
  echo $! >"$dir/pid"
  for _ in $(seq 1 300); do
    grep -qs '^export API=' "$dir/demo.env" && curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    kill -0 "$!" 2>/dev/null || { cat "$dir/host.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "http://127.0.0.1:$port" >"$dir/url"
  (
    # shellcheck disable=SC1091
    . "$dir/demo.env"
    for class in create read; do
      PAYORDERS_LOCAL_DIR=$dir "$bin" org limit --org "$PAYORDERS_ORG_ID" --class "$class" --per-hour 1000000000 >/dev/null
    done
    python3 "$here/requests.py" 1 "$dir/one.txt"
    IFS=$'\t' read -r sig body <"$dir/one.txt"
    curl -sf -X POST "http://127.0.0.1:$port/pay-orders" -H "X-API-Key: $PAYORDERS_API_KEY" \
      -H "Authorization-Signature: $sig" -H 'Content-Type: application/json' -d "$body" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' >"$dir/order"
  )
}

# One measured run of host $1: "kind name requests secs rps p50 p99 non2xx sockerr cpu_ticks".
run() {
  local name=$1 kind=$2 dir=$work/$1 pid before after args
  pid=$(cat "$dir/pid")
  if [ "$kind" = create ]; then
    # Fresh signed bodies for each run (a nonce is single-use), made before the clock starts:
    # enough for 12,000 creates a second (the host now serves about 6,000; requests past the
    # file's end would repeat a nonce, fail fast and flatter the rate).
    # shellcheck disable=SC1091
    (. "$dir/demo.env"; python3 "$here/requests.py" $((secs * 12000)) "$dir/creates.txt")
    args=(create "$dir/creates.txt")
  else
    args=(get "/pay-orders/$(cat "$dir/order")")
  fi
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local out
  out=$(WRK_THREADS=$threads wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s -s "$here/wrk.lua" \
    "$(cat "$dir/url")" -- "${args[@]}" "$(. "$dir/demo.env"; echo "$PAYORDERS_API_KEY")" | sed -n 's/^RESULT //p')
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  echo "$kind $name $out $((after - before))"
}

start A "$1"
start B "$2"
echo "bench: A = $1, B = $2: $rounds rounds of A then B, ${secs} s each, creates then gets" >&2
results=$work/results.txt
for kind in create get; do
  for i in $(seq 1 "$rounds"); do
    run A "$kind" | tee -a "$results" >&2
    run B "$kind" | tee -a "$results" >&2
  done
done

python3 - "$results" "$(getconf CLK_TCK)" "$rounds" "$secs" "$conns" <<'EOF'
import statistics, sys
path, hz, rounds, secs, conns = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
rows = {}
for line in open(path):
    kind, name, requests, _, rps, p50, p99, non2xx, sock, ticks = line.split()
    rows.setdefault((kind, name), []).append(
        (float(rps), float(p50), float(p99), int(ticks) / hz / int(requests) * 1e6, int(non2xx) + int(sock)))
print(f"{conns} connections, wrk, {rounds} interleaved rounds of {secs} s; medians")
print()
print("| request | build | requests/s | p50 | p99 | host CPU per request | failed |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
bad = 0
for kind in ("create", "get"):
    for name in ("A", "B"):
        r = rows[(kind, name)]
        med = lambda i: statistics.median(x[i] for x in r)
        bad += sum(x[4] for x in r)
        print(f"| {kind} | {name} | {med(0):,.0f} | {med(1):.2f} ms | {med(2):.2f} ms | {med(3):.0f} µs | {sum(x[4] for x in r)} |")
for kind in ("create", "get"):
    pairs = zip(rows[(kind, "A")], rows[(kind, "B")])
    print(f"\n{kind}: B/A requests/s, median of the {rounds} pairs: {statistics.median(b[0] / a[0] for a, b in pairs):.2f}", end="")
print()
sys.exit(1 if bad else 0)
EOF
