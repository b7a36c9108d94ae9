"""Runs moto server handling one request at a time, refusing the queries DynamoDB refuses.

moto's DynamoDB TransactWriteItems rolls a cancelled transaction back by restoring a copy
of the whole table taken when it began. Served by a threaded server, that restore erases
writes other requests committed meanwhile, which real DynamoDB never does (its transactions
are serializable). Handling requests one at a time makes each call atomic, as in DynamoDB,
while the tests' clients still race to send them.

moto also answers two queries that DynamoDB refuses with a ValidationException: a
`BETWEEN` whose lower bound is above its upper bound, and an `ExclusiveStartKey` outside
the key condition's range. `strict_queries` refuses them as DynamoDB does, so the store
tests see what production sees.

Usage: python moto_serial.py HOST PORT
"""

import io
import json
import re
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

BETWEEN = re.compile(r"(#?[\w.]+)\s+BETWEEN\s+(:\w+)\s+AND\s+(:\w+)", re.IGNORECASE)


def _scalar(value):
    """A key attribute value as something comparable: a string, a number or bytes."""
    if "N" in value:
        return float(value["N"])
    return value.get("S", value.get("B"))


def query_refusal(body):
    """DynamoDB's message for a Query it refuses and moto would answer, else None."""
    match = BETWEEN.search(body.get("KeyConditionExpression", ""))
    if not match:
        return None
    name, lo, hi = match.groups()
    name = body.get("ExpressionAttributeNames", {}).get(name, name)
    values = body.get("ExpressionAttributeValues", {})
    if lo not in values or hi not in values:
        return None
    low, high = _scalar(values[lo]), _scalar(values[hi])
    if low > high:
        return (
            "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound "
            "to be greater than or equal to lower bound"
        )
    start = body.get("ExclusiveStartKey") or {}
    if name in start and not low <= _scalar(start[name]) <= high:
        return "The provided starting key is outside query key range"
    return None


def strict_queries(app):
    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".Query"):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(size)
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                refusal = query_refusal(json.loads(raw or b"{}"))
            except (ValueError, TypeError, AttributeError):
                refusal = None
            if refusal:
                body = json.dumps(
                    {
                        "__type": "com.amazonaws.dynamodb.v20120810#ValidationException",
                        "message": refusal,
                    }
                ).encode()
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
        return app(environ, start_response)

    return wrapped


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = strict_queries(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
