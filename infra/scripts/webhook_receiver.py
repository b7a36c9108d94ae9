"""A webhook receiver for tests: verifies every delivery it gets with the official
Standard Webhooks library (`standardwebhooks` from PyPI), which is the point: proof that a
third-party verifier accepts our signatures.

Usage: webhook_receiver.py CONFIG LOG PORT_FILE

CONFIG (JSON, re-read on every request) says how to answer:
  {"secrets": {"name": "whsec_..."}, "fail_first": 0, "status": 500, "retry_after": null,
   "delay": 0}
  The first `fail_first` requests are answered with `status` (and Retry-After if set);
  the rest with 200; each answer only after `delay` seconds.
LOG gets one JSON line per request: the webhook headers, the body, whether each named
secret verified it (true, or the library's error text), and the status answered.
The chosen port is written to PORT_FILE once listening.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

config_path, log_path, port_path = sys.argv[1], sys.argv[2], sys.argv[3]
lock = threading.Lock()
received = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global received
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(config_path) as f:
            cfg = json.load(f)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = {}
        for name, secret in cfg.get("secrets", {}).items():
            try:
                Webhook(secret).verify(body, headers)
                verified[name] = True
            except Exception as e:  # the library's own refusal
                verified[name] = repr(e)
        with lock:
            received += 1
            n = received
        failing = n <= cfg.get("fail_first", 0)
        status = cfg.get("status", 500) if failing else 200
        line = {
            "n": n,
            "path": self.path,
            "webhook_id": headers.get("webhook-id"),
            "webhook_timestamp": headers.get("webhook-timestamp"),
            "webhook_signature": headers.get("webhook-signature"),
            "verified": verified,
            "body": json.loads(body) if body else None,
            "answered": status,
        }
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        # A slow endpoint: answers only after `delay` seconds.
        time.sleep(cfg.get("delay", 0))
        self.send_response(status)
        if failing and cfg.get("retry_after") is not None:
            self.send_header("Retry-After", str(cfg["retry_after"]))
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"not now")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_path + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(port_path + ".tmp", port_path)
server.serve_forever()
