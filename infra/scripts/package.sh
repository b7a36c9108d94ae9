#!/usr/bin/env bash
# `make package`: every function of template.yaml built by `sam build` with cargo-lambda
# (BuildMethod rust-cargolambda), for ARCH (x86_64 here; arm64 where the aarch64 target is
# installed: `rustup target add aarch64-unknown-linux-gnu`), into .aws-sam/build. Prints each
# function's bootstrap and zip size, and the build's time. The SAM CLI, cargo-lambda and zig
# come from PyPI into .venv-sam on first use (their pins would fight the test tools' in .venv).
set -euo pipefail
# Python keeps the bytecode of what the venvs' tools import (see test.sh).
unset PYTHONDONTWRITEBYTECODE

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
arch=${ARCH:-x86_64}
case "$arch" in
  x86_64) triple=x86_64-unknown-linux-gnu ;;
  arm64) triple=aarch64-unknown-linux-gnu ;;
  *) echo "package: ARCH is x86_64 or arm64, not $arch" >&2; exit 2 ;;
esac
if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  echo "package: the Rust target $triple is not installed (rustup target add $triple)" >&2
  exit 1
fi

infra/scripts/services.sh install-package
export PATH="$root/.venv-sam/bin:$PATH"
started=$SECONDS
sam validate --lint --template template.yaml
# Each function's CodeUri is its bundle (bundles/<name>: one binary for several functions of
# the same features, each run under its own Handler), since each fat-LTO link of the whole
# stack takes about a minute of CPU: 12 links instead of 31. sam build runs `cargo lambda
# build --release` in each bundle's directory, one at a time: each gets only its own
# features, and all share target/. One at a time, the links would run one after the other;
# so first, bundles that resolve their dependencies alike (package_groups.py asks cargo:
# building them together changes no crate's features) are built by one cargo-lambda call,
# whose links cargo runs side by side. sam build then finds their binaries up to date and
# only copies them.
arch_flag=()
[ "$arch" = arm64 ] && arch_flag=(--arm64)
groups=$(python3 infra/scripts/package_groups.py "$triple")
echo "package: $(wc -l <<<"$groups") groups of bundles that build alike"
while read -r group; do
  # shellcheck disable=SC2086
  cargo lambda build --release --locked "${arch_flag[@]}" $(printf -- '-p %s ' $group)
done <<<"$groups"
sam build --template template.yaml --beta-features --no-cached --parameter-overrides "Architecture=$arch"
secs=$((SECONDS - started))

echo
echo "package: $arch, built in $secs s; each code package sam build made: its bootstrap (stripped), its zip, the functions it serves:"
python3 - <<'EOF'
import hashlib, io, os, sys, zipfile
sys.path.insert(0, "infra/scripts")
import template_functions
root = ".aws-sam/build"
# Which functions (their Handler) each code package serves: sam build writes one package per
# bundle (several functions share it) and points each function's CodeUri at it.
serves = {}
for f in template_functions.functions(os.path.join(root, "template.yaml")):
    if f["code_uri"]:
        serves.setdefault(f["code_uri"], []).append(f["handler"])
rows = []
binaries = set()
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "bootstrap")
    if not os.path.isfile(path):
        continue
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    rows.append((name, os.path.getsize(path), len(buf.getvalue())))
    binaries.add(hashlib.sha256(open(path, "rb").read()).hexdigest())
for name, raw, zipped in rows:
    print(f"  {name:<34} {raw / 1048576:6.2f} MB   zip {zipped / 1048576:5.2f} MB   {', '.join(serves.get(name, ['?']))}")
if not rows:
    raise SystemExit("package: sam build produced no bootstrap")
functions = sum(len(v) for v in serves.values())
big = max(rows, key=lambda r: r[1])
print(f"  {functions} functions in {len(rows)} code packages of {len(binaries)} distinct binaries; largest {big[0]} {big[1] / 1048576:.2f} MB")
# The size budget (docs/performance.md): every function's bootstrap at most 6 MB (MiB).
over = [r for r in rows if r[1] > 6 * 1048576]
if over:
    raise SystemExit("package: over the 6 MB budget: " + ", ".join(f"{n} {b} bytes" for n, b, _ in over))
EOF
