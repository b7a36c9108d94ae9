#!/usr/bin/env bash
# make test's client stage: a TypeScript client generated from docs/openapi.json by
# openapi-typescript compiles, with infra/client-check/use.ts using its types (tsc --noEmit,
# strict). Both tools are pinned in package.json and installed into node_modules once.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
infra/scripts/services.sh install-node
node_modules/.bin/openapi-typescript docs/openapi.json -o infra/client-check/api.d.ts >/dev/null
node_modules/.bin/tsc -p infra/client-check/tsconfig.json
echo "client: openapi-typescript types from docs/openapi.json compile with infra/client-check/use.ts"
