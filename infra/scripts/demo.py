"""`make demo`: against a running `make dev`, one signed SALE from creation to a verified
`order.completed` webhook, printing each step with its time. Exit 0 only if every step held.

  1. a receiver listens on a free local port (before anything is sent to it) and verifies
     every delivery with the official Standard Webhooks library (`standardwebhooks`);
  2. a webhook endpoint for `order.completed` is registered to it (its secret stays in
     memory; the endpoint is deleted at the end);
  3. a signed SALE of 49.99 USD is created (a unique idempotency key: re-runnable);
  4. it is paid: on the local chain when `make dev` runs one (TUSD sent with `cast`, the hash
     submitted, one more block mined for the second confirmation), else on the sandbox
     (`simulate-payment`);
  5. the order is read until COMPLETED, and the webhook until it arrived and verified.

API calls go through `payorders api` (which signs), credentials and URLs come from
$PAYORDERS_LOCAL_DIR/demo.env (.local), which `make dev` writes.
Environment: PAYORDERS_BIN (target/debug/payorders), DEMO_TIMEOUT (seconds per wait, 60).
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL = os.environ.get("PAYORDERS_LOCAL_DIR", os.path.join(ROOT, ".local"))
# The binary `make dev` built: under CARGO_TARGET_DIR when that is set, as cargo puts it.
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.environ.get("PAYORDERS_BIN", os.path.join(os.path.abspath(TARGET), "debug", "payorders"))
CAST = os.path.join(ROOT, "node_modules", ".bin", "cast")
TIMEOUT = float(os.environ.get("DEMO_TIMEOUT", "60"))
# anvil's account 0 (a well-known development key) and the test token it deploys first.
PAYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TUSD = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SANDBOX_CURRENCY = {"chain_id": 84532, "address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}

start = time.monotonic()


def step(text):
    print(f"[{time.monotonic() - start:6.2f}s] {text}", flush=True)


class Failed(Exception):
    pass


def load_env():
    path = os.path.join(LOCAL, "demo.env")
    env = dict(os.environ)
    env.pop("CHAIN", None)  # `make dev`'s CHAIN=0|1; cast would read it as --chain
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("export ") and "=" in line:
                    k, v = line[len("export "):].strip().split("=", 1)
                    if k != "PATH":  # a shell expansion; the binaries are called by path
                        env[k] = v
    except FileNotFoundError:
        raise Failed(f"no {path}: start `make dev` first (in another terminal)")
    if "API" not in env:
        raise Failed(f"{path} has no API: restart `make dev` (it writes it)")
    return env


def api(env, method, path, body=None, idempotency_key=None):
    cmd = [BIN, "--dir", LOCAL, "api", method, path]
    if body is not None:
        cmd.append(json.dumps(body))
    if idempotency_key:
        cmd += ["--idempotency-key", idempotency_key]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise Failed(f"{method} {path}: {r.stderr.strip() or r.stdout.strip()}")
    return json.loads(r.stdout)


def chain_answers(url):
    req = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return "result" in json.load(r)
    except OSError:
        return False


def receiver(secret_box, deliveries):
    """A server bound (so listening) before it is returned; each delivery verified."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(secret_box["secret"]).verify(body, headers)
                verified = True
            except Exception as e:  # the library's own refusal
                verified = repr(e)
            deliveries.put((json.loads(body), verified, headers.get("webhook-id")))
            self.send_response(200 if verified is True else 400)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_completed(env, order_id):
    deadline = time.monotonic() + TIMEOUT
    last = None
    while True:
        o = api(env, "GET", f"/pay-orders/{order_id}")
        if o["status"] != last:
            last = o["status"]
            if last != "COMPLETED":
                step(f"order is {last}")
        if last == "COMPLETED":
            return o
        if last in ("CANCELLED", "EXPIRED"):
            raise Failed(f"the order ended {last}")
        if time.monotonic() > deadline:
            raise Failed(f"the order is still {last} after {TIMEOUT:.0f} s")
        time.sleep(0.3)


def pay_on_chain(env, order_id, rpc):
    o = api(env, "POST", f"/pay-orders/{order_id}/payment-details",
            {"source_currency": {"chain_id": 31337, "address": TUSD}})
    p = o["payment"]
    deposit, raw = p["steps"][0]["deposit_address"], p["input"]["amount"]["raw"]
    step(f"{o['status']}: pay {p['input']['amount']['ui']} TUSD on the local chain to {deposit}")
    sent = subprocess.run(
        [CAST, "send", TUSD, "transfer(address,uint256)", deposit, raw,
         "--private-key", PAYER_KEY, "--rpc-url", rpc, "--json"],
        env=env, capture_output=True, text=True, timeout=60)
    if sent.returncode != 0:
        raise Failed(f"cast send: {sent.stderr.strip()}")
    tx = json.loads(sent.stdout)["transactionHash"]
    step(f"sent with cast: tx {tx}")
    o = api(env, "POST", f"/pay-orders/{order_id}/payments", {"tx_hash": tx})
    t = o["transfers"][0]
    step(f"{o['status']}: hash submitted, {t['confirmations']} confirmation(s), {t['required_confirmations']} required")
    # anvil mines a block per transaction only: one more block is the second confirmation.
    subprocess.run([CAST, "rpc", "anvil_mine", "1", "--rpc-url", rpc],
                   env=env, capture_output=True, check=True, timeout=30)
    step("mined one more block")


def pay_on_sandbox(env, order_id):
    o = api(env, "POST", f"/pay-orders/{order_id}/payment-details",
            {"source_currency": SANDBOX_CURRENCY})
    p = o["payment"]
    step(f"{o['status']}: pay {p['input']['amount']['ui']} {p['input']['currency']['symbol']} "
         f"(no local chain: on the sandbox)")
    o = api(env, "POST", f"/pay-orders/{order_id}/simulate-payment", {})
    step(f"{o['status']}: sandbox transfer {o['transfers'][0]['tx_hash']}")


def main():
    env = load_env()
    if not os.access(BIN, os.X_OK):
        raise Failed(f"no {BIN}: run `make dev` first")
    step(f"API {env['API']}, organization {env.get('PAYORDERS_ORG_ID', '?')}")

    secret_box, deliveries = {}, queue.Queue()
    server = receiver(secret_box, deliveries)
    port = server.server_address[1]
    step(f"receiver listening on 127.0.0.1:{port}, verifying with standardwebhooks")
    endpoint = api(env, "POST", "/webhook-endpoints", {
        "url": f"http://localhost:{port}/webhooks",
        "events": ["order.completed"],
        "description": "make demo",
    })
    secret_box["secret"] = endpoint["secret"]
    step(f"endpoint {endpoint['id']} subscribed to order.completed")
    try:
        order = api(env, "POST", "/pay-orders", {
            "mode": "SALE", "amount": "49.99", "fiat_unit": "USD",
            "metadata": {"items": [{"name": "Premium Widget", "quantity": 1, "unit_price": 49.99}]},
        }, idempotency_key=f"demo-{uuid.uuid4()}")
        oid = order["id"]
        url = order.get("checkout_url") or order.get("hosted_url")
        step(f"created {oid}: SALE 49.99 USD, signed, {order['status']}"
             + (f"; checkout: {url}" if url else " (no checkout page yet)"))

        rpc = env.get("PAYORDERS_RPC_31337")
        if rpc and chain_answers(rpc):
            pay_on_chain(env, oid, rpc)
        else:
            pay_on_sandbox(env, oid)

        o = wait_completed(env, oid)
        t = o["transfers"][-1]
        step(f"COMPLETED: received {o['payment']['received']['ui']}, confirmed "
             f"({t['confirmations']} confirmations, {t['required_confirmations']} required)")

        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                event, verified, msg_id = deliveries.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise Failed(f"no order.completed webhook for {oid} within {TIMEOUT:.0f} s")
            obj = event.get("data", {}).get("object", {})
            if event.get("type") != "order.completed" or obj.get("id") != oid:
                continue
            if verified is not True:
                raise Failed(f"webhook {msg_id} did not verify: {verified}")
            step(f"webhook {msg_id} order.completed {oid} verified by standardwebhooks")
            break
    finally:
        try:
            api(env, "DELETE", f"/webhook-endpoints/{endpoint['id']}")
        except Failed as e:
            print(f"could not delete endpoint {endpoint['id']}: {e}", file=sys.stderr)
        server.shutdown()
    step("demo passed")


if __name__ == "__main__":
    try:
        main()
    except (Failed, subprocess.SubprocessError) as e:
        step(f"FAILED: {e}")
        sys.exit(1)
