"""A PayOrders webhook receiver that verifies every delivery with the official Standard
Webhooks library (pip install standardwebhooks).

    WEBHOOK_SECRET=whsec_... python3 docs/examples/webhook_receiver.py   # listens on :4242
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


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "4242"))), Receiver).serve_forever()
