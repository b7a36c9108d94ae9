#!/usr/bin/env bash
# Schemathesis against a local host (`make dev`: host, local chain, a node per other EVM
# testnet), every request signed and most path ids real objects (fuzz_hooks.py). Checks: no
# answer >= 500, no dropped connection, every answer documented in docs/openapi.json (status
# code, content type, body schema). Fails on any failure, and when the run sent fewer requests
# or reached fewer operations than its mode promises.
#
#   infra/scripts/fuzz.sh quick DIR   make test's stage (~20-45 s): against the host already
#                                     running with its store and demo.env in DIR
#   infra/scripts/fuzz.sh long        make fuzz: its own host on free ports, then a campaign of
#                                     at least FUZZ_REQUESTS requests (10000) within FUZZ_TIME
#                                     seconds (600); the figures are printed at the end
set -euo pipefail
# Python keeps the bytecode of what the venvs' tools import (see test.sh).
unset PYTHONDONTWRITEBYTECODE

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
mode=${1:?usage: fuzz.sh quick DIR | fuzz.sh long}
dir=${2:-}

infra/scripts/services.sh install-fuzz

work=$(mktemp -d "${TMPDIR:-/tmp}/payorders-fuzz.XXXXXX")
# shellcheck source=infra/scripts/devhost.sh
. infra/scripts/devhost.sh
trap '[ -d "$work/dev" ] && devhost_stop "$work/dev"; rm -rf "$work"' EXIT
if [ -z "$dir" ]; then
  echo "fuzz: starting a local host with its own store and chains"
  devhost_start "$work/dev"
  dir=$work/dev
fi
env_value() { sed -n "s/^export $1=//p" "$dir/demo.env"; }
API=$(env_value API)
[ -n "$API" ] || { echo "fuzz: $dir/demo.env lacks API" >&2; exit 1; }
# An organization of its own: whatever the run changes (settings, wallets, keys, limits)
# stays there, so the browser test can use the demo organization on the same host meanwhile.
"${CARGO_TARGET_DIR:-target}/debug/payorders" --dir "$dir" org create --name "Fuzz $$" >"$work/org"
org_value() { sed -n "s/^$1  *\([^ ]*\)$/\1/p" "$work/org"; }
org=$(org_value organization) PAYORDERS_API_KEY=$(org_value 'test key') PAYORDERS_API_SECRET=$(org_value 'test secret')
[ -n "$org" ] && [ -n "$PAYORDERS_API_KEY" ] && [ -n "$PAYORDERS_API_SECRET" ] \
  || { cat "$work/org" >&2; echo "fuzz: creating its organization printed no id, key or secret" >&2; exit 1; }
export API PAYORDERS_API_KEY PAYORDERS_API_SECRET
# The campaign sends thousands of requests with one key: lift its organization's hourly
# limits (their own test is in the API tests) so that the fuzzer reaches the handlers.
for class in create read list analytics webhooks settings; do
  "${CARGO_TARGET_DIR:-target}/debug/payorders" --dir "$dir" org limit --org "$org" \
    --class "$class" --per-hour 10000000 >/dev/null
done

operations=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for p in d["paths"].values() for m in p if m in ("get","post","put","patch","delete","options","head")))' docs/openapi.json)
case "$mode" in
  # Examples, a few generated cases per operation and short stateful scenarios. One worker:
  # schemathesis's workers are threads under one GIL, and here 4 took 45 s and twice the CPU
  # of one (29 s) for the same 320 generated requests.
  quick) args=(--phases examples,fuzzing,stateful --max-examples 6 --workers 1); want=$((operations * 5)) ;;
  # Every phase (the coverage phase's boundary values too), repeated until the time is spent.
  # One worker here too: in 90 s, 1 worker sent 6,186 requests and 4 sent 5,696 (2 cores).
  long) args=(--max-time "${FUZZ_TIME:-600}" --workers "${FUZZ_WORKERS:-1}"); want=${FUZZ_REQUESTS:-10000} ;;
  *) echo "usage: fuzz.sh quick DIR | fuzz.sh long" >&2; exit 2 ;;
esac

echo "fuzz: schemathesis ($mode) against $API, $operations operations of docs/openapi.json"
start=$(date +%s)
status=0
(
  cd "$work"
  FUZZ_STATS="$work/stats.json" PYTHONPATH="$root/infra/scripts" SCHEMATHESIS_HOOKS=fuzz_hooks \
    "$root/.venv/bin/schemathesis" run "$root/docs/openapi.json" --url "$API" \
    --header "X-API-KEY: $PAYORDERS_API_KEY" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --request-timeout 20 --no-color "${args[@]}"
) >"$work/run.log" 2>&1 || status=$?
elapsed=$(($(date +%s) - start))
if [ "$mode" = long ] || [ "$status" != 0 ]; then
  cat "$work/run.log"
else
  grep -E '^(fuzz: [0-9]|  [0-9]+ generated|Seed:)' "$work/run.log" || true
fi
[ -s "$work/stats.json" ] || { cat "$work/run.log" >&2; echo "fuzz: schemathesis sent nothing" >&2; exit 1; }
read -r sent reached unauthenticated < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["requests"], len(s["operations"]), s["statuses"].get("401", 0))' "$work/stats.json")
failures=$(sed -nE 's/.* ([0-9]+) unique failures?.*/\1/p' "$work/run.log" | tail -1)
echo "fuzz: $mode run: $sent requests, $reached of $operations operations, ${failures:-0} failures, in ${elapsed} s (schemathesis exit $status)"
if [ "$status" != 0 ]; then
  echo "fuzz: failures above (schemathesis exit $status); the end of the local host's log:" >&2
  tail -50 "$dir/dev.log" >&2
  exit 1
fi
[ "$reached" -eq "$operations" ] || { echo "fuzz: only $reached of $operations operations were called" >&2; exit 1; }
[ "$sent" -ge "$want" ] || { echo "fuzz: only $sent requests, fewer than $want" >&2; exit 1; }
# A run whose key stopped working tests authentication alone: more than one answer in ten
# a 401 means it did (the signed requests and the seeded key are meant to pass it).
[ $((unauthenticated * 10)) -le "$sent" ] \
  || { echo "fuzz: $unauthenticated of $sent answers were 401: the run's key stopped working" >&2; exit 1; }
