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

import copy
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


def cheap_transaction_rollback():
    """moto's TransactWriteItems takes a deep copy of each table it writes before it begins,
    to restore on failure: a copy of the whole table per transaction, so every transaction
    costs more as a test's table grows (a few hundred orders made the store tests' slowest
    requests 40-50 ms). Served one request at a time, nothing else changes a table while a
    transaction runs, so keeping the items it touches (and the length of each table's
    stream) and putting them back on failure restores exactly what the copy would."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    real_deepcopy = copy.deepcopy

    class TablesNotCopied:
        """`copy` as moto's models module sees it: tables are not copied."""

        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            if isinstance(value, Table):
                return value
            return real_deepcopy(value, memo)

    models.copy = TablesNotCopied()
    original = models.DynamoDBBackend.transact_write_items

    def touched(backend, transact_items):
        saved, streams = [], {}
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            name = op.get("TableName")
            table = backend.tables.get(name) if name else None
            if table is None:
                continue
            attrs = op.get("Item") or op.get("Key") or {}
            if table.hash_key_attr not in attrs:
                continue
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in attrs:
                    continue
                range_value = DynamoType(attrs[table.range_key_attr])
            item = table.get_item(hash_value, range_value)
            saved.append((table, hash_value, range_value, real_deepcopy(item)))
            if table.stream_shard is not None:
                streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
        return saved, streams

    def restore(saved, streams):
        for table, hash_value, range_value, item in reversed(saved):
            if range_value is not None:
                bucket = table.items[hash_value]
                if item is None:
                    bucket.pop(range_value, None)
                else:
                    bucket[range_value] = item
            elif item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item
        for shard, length in streams.values():
            del shard.items[length:]

    def transact_write_items(self, transact_items):
        saved, streams = touched(self, transact_items)
        try:
            return original(self, transact_items)
        except Exception:
            restore(saved, streams)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    cheap_transaction_rollback()
    app = strict_queries(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
