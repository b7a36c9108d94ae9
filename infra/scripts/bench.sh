#!/usr/bin/env bash
# `make bench`: release builds, then the figures of docs/performance.md, each a median of
# repeated runs (never a timing assertion in a test):
#   - every function's size and zipped size, init (exec -> first Runtime API poll) against a
#     hello-world lambda_runtime function built in the same run, and its first event
#     (exec -> answer to events/<name>.json) against moto and the local chain;
#   - the build itself: how long the release build of every function took.
# The results go to stdout and, with UPDATE_DOCS=1, to docs/performance.md.
# RUNS (30) sets the repetitions.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-30}
target=${CARGO_TARGET_DIR:-$root/target}
functions=$(ls functions)

infra/scripts/services.sh install >/dev/null
svc=$(mktemp -d "${TMPDIR:-/tmp}/payorders-bench.XXXXXX")
trap 'infra/scripts/services.sh stop "$svc" >/dev/null 2>&1 || true; rm -rf "$svc"' EXIT
out=$svc/results.md

echo "bench: release build of every function, the hello-world baseline and the local host"
build_started=$SECONDS
# shellcheck disable=SC2046
cargo build --release --locked -p hello-lambda -p payorders-local $(printf -- '-p %s ' $functions)
build_secs=$((SECONDS - build_started))

infra/scripts/services.sh start "$svc" >/dev/null
# shellcheck disable=SC1091
. "$svc/env"
# The functions' adapters against the test services: a table, two queues, the local chain.
export AWS_ENDPOINT_URL=$PAYORDERS_TEST_AWS_ENDPOINT AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench PAYORDERS_TABLE=bench \
  PAYORDERS_MASTER_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
  PAYORDERS_RPC_31337=$PAYORDERS_TEST_ANVIL_URL
"$target/release/payorders" --store dynamodb --table bench tables create >/dev/null
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
  python3 infra/scripts/coldstart.py --runs "$runs" --json "$svc/coldstart.json" \
    "$target/release/hello-lambda" $(printf -- "$target/release/%s " $functions)
  echo
  echo "Release build of every function, the baseline and the local host: ${build_secs} s (incremental when target/ was warm)."
} | tee "$out"

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
