#!/usr/bin/env bash
# `make bench`: `make package`, then the figures of docs/performance.md, each a median of
# repeated runs (never a timing assertion in a test):
#   - every function's size and zipped size, init (exec -> first Runtime API poll) against a
#     hello-world lambda_runtime function built in the same run, and its first event
#     (exec -> answer to events/<name>.json) against moto and the local chain;
#   - the build itself: how long `make package` took.
# The results go to stdout and, with UPDATE_DOCS=1, to docs/performance.md.
# RUNS (30) sets the repetitions.
set -euo pipefail
# Python keeps the bytecode of what the venvs' tools import (see test.sh).
unset PYTHONDONTWRITEBYTECODE

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-30}
target=${CARGO_TARGET_DIR:-$root/target}
functions=$(ls functions)

infra/scripts/services.sh install >/dev/null
svc=$(mktemp -d "${TMPDIR:-/tmp}/payorders-bench.XXXXXX")
trap 'infra/scripts/services.sh stop "$svc" >/dev/null 2>&1 || true; rm -rf "$svc"' EXIT
out=$svc/results.md

# The functions as Lambda runs them: `make package` (sam build, cargo-lambda, each bundle
# with only its functions' features), which prints the sizes and its build time. The baseline is
# built the same way; the operator CLI (for `tables create` against moto) is a debug build.
echo "bench: make package, the hello-world baseline and the operator CLI"
build_started=$SECONDS
infra/scripts/package.sh | tee "$svc/package.txt"
package_secs=$((SECONDS - build_started))
export PATH="$root/.venv-sam/bin:$PATH"
(cd infra/bench/hello && cargo lambda build --release --locked --bin hello-lambda)
cargo build --locked --bin payorders -p payorders-local
build_secs=$((SECONDS - build_started))
lambda_bin=$target/lambda
host_bin=$target/debug/payorders
bins=$svc/bin
mkdir -p "$bins"
ln -s "$lambda_bin/hello-lambda/bootstrap" "$bins/hello-lambda"
# Each function as Lambda runs it: its bundle's binary (Metadata Binary) under the function's
# name, which coldstart.py passes as _HANDLER (the function's Handler).
python3 infra/scripts/template_functions.py template.yaml binaries >"$svc/binaries.txt"
while read -r f b; do ln -s "$lambda_bin/$b/bootstrap" "$bins/$f"; done <"$svc/binaries.txt"
for f in $functions; do
  [ -e "$bins/$f" ] || { echo "bench: no bundle binary for $f" >&2; exit 1; }
done

infra/scripts/services.sh start "$svc" >/dev/null
# shellcheck disable=SC1091
. "$svc/env"
# The functions' adapters against the test services: a table, two queues, the local chain.
export AWS_ENDPOINT_URL=$PAYORDERS_TEST_AWS_ENDPOINT AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench PAYORDERS_TABLE=bench \
  PAYORDERS_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
  PAYORDERS_RPC_31337=$PAYORDERS_TEST_ANVIL_URL
"$host_bin" --store dynamodb --table bench tables create >/dev/null
queues=$(.venv/bin/python - <<'EOF'
import boto3, os
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
print(sqs.create_queue(QueueName="bench-confirmations")["QueueUrl"], sqs.create_queue(QueueName="bench-webhooks")["QueueUrl"])
EOF
)
read -r PAYORDERS_CONFIRMATIONS_QUEUE_URL PAYORDERS_WEBHOOKS_QUEUE_URL <<<"$queues"
export PAYORDERS_CONFIRMATIONS_QUEUE_URL PAYORDERS_WEBHOOKS_QUEUE_URL

{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/{print $2}') GiB, by \`make bench\`."
  echo
  echo "## Cold starts and sizes (x86_64, release profile)"
  echo
  # shellcheck disable=SC2046
  python3 infra/scripts/coldstart.py --runs "$runs" --json "$svc/coldstart.json" --template template.yaml \
    "$bins/hello-lambda" $(printf -- "$bins/%s " $functions)
  echo
  echo "## Packaging"
  echo
  echo "\`make package\` (sam build, cargo-lambda, the release profile) of every function (their bundles): ${package_secs} s;"
  echo "with the baseline and the operator CLI: ${build_secs} s (from an empty target/ on a fresh clone; incremental when it was warm)."
  echo
  echo "## Throughput of the local host"
  echo
  # Its own repetitions (5 runs of 10 s), not the cold starts' RUNS.
  RUNS=${THROUGHPUT_RUNS:-5} infra/scripts/bench_throughput.sh
} | tee "$out"

# What one paid order costs in AWS: DynamoDB units, SQS, Lambda and API Gateway requests of a
# SALE from create to its delivered webhook, through the real adapters against moto.
{ echo; infra/scripts/bench_cost.sh; } | tee -a "$out"

if [ -n "${UPDATE_DOCS:-}" ]; then
  python3 - "$out" <<'EOF'
import re, sys
doc = "docs/performance.md"
results = open(sys.argv[1]).read().strip()
text = open(doc).read()
start, end = "<!-- bench:start -->", "<!-- bench:end -->"
text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{results}\n{end}", text, flags=re.S)
open(doc, "w").write(text)
EOF
  echo "bench: docs/performance.md updated"
fi
