#!/usr/bin/env bash
# `make test`: install and start the test services on free ports, run every cargo test
# against them, stop them. Fails loudly if a service cannot start.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

command -v cargo >/dev/null || { echo "test: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "test: python3 is needed for the moto test server" >&2; exit 1; }
command -v curl >/dev/null || { echo "test: curl is needed to wait for the test services" >&2; exit 1; }

svc=$(mktemp -d "${TMPDIR:-/tmp}/payorders-services.XXXXXX")
trap 'infra/scripts/services.sh stop "$svc"; rm -rf "$svc"' EXIT

infra/scripts/services.sh start "$svc"
# shellcheck disable=SC1091
. "$svc/env"

echo "test: cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml

cargo test --workspace --locked "$@"
