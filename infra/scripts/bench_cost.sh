#!/usr/bin/env bash
# `make bench` (its cost part): what one paid order costs in AWS. Starts its own moto server
# and anvil on free ports, replays one signed SALE from creation to COMPLETED with its
# webhooks delivered to one endpoint (infra/local/tests/api/cost.rs: the real DynamoDB and SQS
# adapters, the local host's routes and the real stream and queue handlers, every AWS call
# counted by a proxy in front of moto), and prints the markdown table: calls, read and write
# units per DynamoDB operation and index, SQS requests, Lambda invocations, API Gateway
# requests, and the cost per 1,000,000 paid orders at us-east-1 list prices.
# A debug build (the test profile): the counts do not depend on the profile.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

infra/scripts/services.sh install >/dev/null
svc=$(mktemp -d "${TMPDIR:-/tmp}/payorders-cost.XXXXXX")
trap 'infra/scripts/services.sh stop "$svc" >/dev/null 2>&1 || true; rm -rf "$svc"' EXIT
infra/scripts/services.sh start "$svc" >/dev/null
# shellcheck disable=SC1091
. "$svc/env"

PAYORDERS_COST_REPORT=$svc/cost.md cargo test --locked -p payorders-local --test api -- \
  --exact cost::one_paid_sale_costs_what_the_budget_allows >"$svc/test.log" 2>&1 \
  || { cat "$svc/test.log" >&2; exit 1; }
echo "## Cost per paid order, measured"
echo
cat "$svc/cost.md"
