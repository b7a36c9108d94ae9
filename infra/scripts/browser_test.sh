#!/usr/bin/env bash
# The checkout page in headless Chromium against a running `make dev` (its demo.env in
# $PAYORDERS_LOCAL_DIR): installs what it needs (services.sh install-browser), then runs
# infra/scripts/browser_test.py, bounded. Writes docs/checkout.png.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
infra/scripts/services.sh install-browser
exec timeout "${BROWSER_TEST_LIMIT:-120}" .venv/bin/python infra/scripts/browser_test.py
