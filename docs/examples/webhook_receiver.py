"""A PayOrders webhook receiver that verifies every delivery with the official Standard
Webhooks library (pip install standardwebhooks; `make demo` installs it into .venv).

    WEBHOOK_SECRET=whsec_... PORT=4242 .venv/bin/python docs/examples/webhook_receiver.py

WEBHOOK_SECRET is the endpoint's secret (keep it in the environment, not in a file in the
repository); PORT is where it listens (4242 by default). It prints one line once it listens,
then one per delivery.
"""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook

webhook = Webhook(os.environ["WEBHOOK_SECRET"])


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            event = webhook.verify(body, headers)
        except Exception as e:
            print("rejected:", e, flush=True)
            self.send_response(400)
            self.end_headers()
            return
        order = event["data"]["object"]
        print("verified", headers["webhook-id"], event["type"], order["id"], order.get("status"), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "4242"))), Receiver)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
