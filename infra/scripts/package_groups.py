#!/usr/bin/env python3
"""Groups the bundles (`bundles/*`: one Lambda binary each, for the functions of template.yaml
that name it) so that one `cargo lambda build -p A -p B …` per group builds every crate
exactly as building each bundle alone does (as `sam build` will, one at a time).

Cargo unifies features across the packages of one build, so a group is only safe when that
unification changes nothing: for every member, each crate of its dependency tree resolves
to the same features in the group as alone. `cargo tree` (which resolves as a build does,
without compiling) checks it. A bundle joins the first group it can join without changing
anything, else starts its own; fewer groups means more links running side by side.

Usage: package_groups.py TRIPLE; prints one group per line (space-separated names).
"""
import concurrent.futures
import os
import subprocess
import sys

triple = sys.argv[1]


def resolved(packages):
    """{(package, features)} of a build of `packages` together (normal and build edges)."""
    cmd = ["cargo", "tree", "--locked", "-e", "normal,build", "--prefix", "none",
           "-f", "{p}|{f}", "--target", triple]
    for p in packages:
        cmd += ["-p", p]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"package: {' '.join(cmd)} failed:\n{run.stderr}")
    units = set()
    for line in run.stdout.splitlines():
        line = line.removesuffix(" (*)").strip()
        if "|" in line:
            package, features = line.split("|", 1)
            units.add((package, features))
    return frozenset(units)


def features_by_package(units):
    by = {}
    for package, features in units:
        by.setdefault(package, set()).add(features)
    return by


def agree(a, b):
    """Whether every crate that both `a` and `b` build has the same features in each."""
    fa, fb = features_by_package(a), features_by_package(b)
    return all(fb.get(p, f) == f for p, f in fa.items())


names = sorted(os.listdir("bundles"))
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    alone = dict(zip(names, pool.map(lambda n: resolved([n]), names)))

# Joining a group adds no feature to anyone exactly when the newcomer and the group agree
# on every crate they share (features only ever add up); cargo checks each group after.
groups = []  # [(members, union of their resolutions)]
for name in names:
    for i, (members, units) in enumerate(groups):
        if agree(alone[name], units):
            groups[i] = (members + [name], units | alone[name])
            break
    else:
        groups.append(([name], alone[name]))

for members, _ in groups:
    together = resolved(members)
    odd = [m for m in members if not agree(alone[m], together)]
    if odd:
        raise SystemExit(f"package: grouping {members} changes how {odd} resolve")
for members, _ in groups:
    print(" ".join(members))
