"""The Lambda functions of a SAM template, as the packaging and bench scripts read them.

Each resource that has a `Handler` is a function: its Handler (the function's name, which a
bundle binary reads as `_HANDLER`), its `CodeUri`, its `BuildProperties.Binary` (the bundle
whose binary serves it) and the `PAYORDERS_*_QUEUE_URL` variables it sets. Read line by line
(resources at two spaces of indentation, as template.yaml and sam build's output have them),
so it needs no YAML library or CloudFormation tag handling.

    python3 template_functions.py TEMPLATE binaries   one line "HANDLER BINARY" per function;
                                                      fails on a function without a Binary
"""
import re
import sys

_RESOURCE = re.compile(r"^  [A-Za-z0-9]+:\s*$")
_FIELDS = {
    "handler": re.compile(r"^\s+Handler:\s*(\S+)"),
    "code_uri": re.compile(r"^\s+CodeUri:\s*(\S+)"),
    "binary": re.compile(r"^\s+Binary:\s*(\S+)"),
}
_QUEUE = re.compile(r"^\s+(PAYORDERS_\w+_QUEUE_URL):")


def functions(path):
    """The template's functions in order: dicts of handler, code_uri, binary (None when the
    resource has none) and queues (a set of variable names)."""
    out, resource = [], None
    for line in open(path).read().splitlines() + ["  End:"]:
        if _RESOURCE.match(line):
            if resource and resource["handler"]:
                out.append(resource)
            resource = dict.fromkeys(_FIELDS) | {"queues": set()}
            continue
        if resource is None:
            continue
        for field, pattern in _FIELDS.items():
            m = pattern.match(line)
            if m:
                resource[field] = m.group(1)
        m = _QUEUE.match(line)
        if m:
            resource["queues"].add(m.group(1))
    return out


if __name__ == "__main__":
    if sys.argv[2:] != ["binaries"]:
        raise SystemExit(__doc__)
    for f in functions(sys.argv[1]):
        if not f["binary"]:
            raise SystemExit(f"template: no Binary for {f['handler']}")
        print(f["handler"], f["binary"])
