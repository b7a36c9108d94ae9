"""Runs moto server handling one request at a time.

moto's DynamoDB TransactWriteItems rolls a cancelled transaction back by restoring a copy
of the whole table taken when it began. Served by a threaded server, that restore erases
writes other requests committed meanwhile, which real DynamoDB never does (its transactions
are serializable). Handling requests one at a time makes each call atomic, as in DynamoDB,
while the tests' clients still race to send them.

Usage: python moto_serial.py HOST PORT
"""

import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
