"""Schemathesis hooks for `make test` and `make fuzz`: signed requests on real objects.

- Every request carries an `Authorization-Signature` v2 header computed over exactly what
  is sent: the method, the path and query as they leave the client, a fresh nonce and the
  body's SHA-256 (the scheme of shared/src/auth/signature.rs, as `payorders api` signs). So
  the routes that need a signed request (SALE creation, merchant wallets) get their bodies
  exercised instead of stopping at 401, and no request is refused as a replay. The test key
  itself goes in X-API-KEY (given on the command line).
- Before the run, a few objects are created through the API (a merchant wallet, webhook
  endpoints, SALE and DEPOSIT orders, one of them paid on the sandbox, one partly paid with a
  refund), and most generated
  path ids are replaced by theirs, so the handlers behind `/{id}` see existing objects in
  every state the run drives them to, not only 404s.

Reads API, PAYORDERS_API_KEY and PAYORDERS_API_SECRET from the environment.
"""

import ast
import atexit
import collections
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
import zlib

import urllib.parse

import requests
import schemathesis
import urllib3.util.connection

# CPython 3.11's ast.parse can fail under threads ("SystemError: AST constructor recursion
# depth mismatch", python/cpython#106905), and hypothesis parses its filters' source while
# the --workers threads generate: one parse at a time.
_ast_parse = ast.parse
_AST_LOCK = threading.Lock()


def _parse_one_at_a_time(*args, **kwargs):
    with _AST_LOCK:
        return _ast_parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time

API = os.environ["API"].rstrip("/")

# Against a local host, every connection (the seeding and schemathesis's own, both through
# urllib3) leaves from 127.0.0.2: the public routes' per-address budgets are then the
# run's own, and the browser test, beside it on the same host from 127.0.0.1, keeps its.
if urllib.parse.urlsplit(API).hostname == "127.0.0.1":
    _create_connection = urllib3.util.connection.create_connection

    def _from_the_runs_own_address(address, *args, **kwargs):
        kwargs["source_address"] = ("127.0.0.2", 0)
        return _create_connection(address, *args, **kwargs)

    urllib3.util.connection.create_connection = _from_the_runs_own_address
API_KEY = os.environ["PAYORDERS_API_KEY"]
API_SECRET = os.environ["PAYORDERS_API_SECRET"]
SANDBOX_USDC = {"chain_id": 84532, "address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}


class SignV2(requests.auth.AuthBase):
    """Signs the prepared request, so the signature covers the bytes on the wire."""

    def __call__(self, r):
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        ts = int(time.time())
        nonce = uuid.uuid4().hex
        body_sha256 = hashlib.sha256(body).hexdigest()
        text = f"v2\n{r.method}\n{r.path_url}\n{ts}\n{nonce}\n{body_sha256}"
        sig = hmac.new(API_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
        # A generated `Authorization: Bearer …` (the document's bearer scheme) names the
        # same key, else the request would only test CONFLICTING_CREDENTIALS.
        if "Authorization" in r.headers:
            r.headers["Authorization"] = f"Bearer {API_KEY}"
        r.headers["Authorization-Signature"] = (
            f"v=2,APIKey={API_KEY},timestamp={ts},nonce={nonce},"
            f"body_sha256={body_sha256},signature={sig}"
        )
        return r


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"X-API-KEY": API_KEY}
    if data is not None:
        headers["Content-Type"] = "application/json"
    r = requests.request(method, API + path, data=data, headers=headers, auth=SignV2(), timeout=30)
    if r.status_code >= 300:
        raise SystemExit(f"fuzz hooks: seeding {method} {path} answered {r.status_code}: {r.text}")
    return r.json()


def seed():
    """Objects for the generated requests to hit: path ids by route prefix and parameter name,
    `keep` for what every run needs (its first ids) and `spare` for what DELETE may remove."""
    wallets = {w["chain_id"] for w in call("GET", "/merchant-wallets")["data"]}
    for chain, currencies in ((84532, ["native", SANDBOX_USDC["address"]]), (11155111, ["native"])):
        if chain not in wallets:
            call("POST", "/merchant-wallets", {
                "chain_id": chain, "address": "0x52908400098527886e0f7030069857d2e4169ee7",
                "currencies": currencies})
    endpoints = [call("POST", "/webhook-endpoints", {
        "url": "http://127.0.0.1:9/fuzz", "events": ["order.completed", "order.created"],
        "description": f"fuzz {i}"})["id"] for i in range(3)]
    orders = []
    for _ in range(3):
        orders.append(call("POST", "/pay-orders", {
            "mode": "SALE", "amount": "12.50", "fiat_unit": "USD", "nonce": f"fuzz-{uuid.uuid4()}"})["id"])
        orders.append(call("POST", "/pay-orders", {
            "mode": "DEPOSIT", "amount": "5", "currency": SANDBOX_USDC,
            "recipient": "0x52908400098527886e0f7030069857d2e4169ee7"})["id"])
    # One awaiting payment, one paid on the sandbox (events, transfers, deliveries).
    call("POST", f"/pay-orders/{orders[0]}/payment-details", {"source_currency": SANDBOX_USDC})
    call("POST", f"/pay-orders/{orders[1]}/payment-details", {"source_currency": SANDBOX_USDC})
    call("POST", f"/pay-orders/{orders[1]}/simulate-payment", {})
    # One partly paid on the sandbox, with a refund (the refund routes' `refund_id`).
    call("POST", f"/pay-orders/{orders[3]}/payment-details", {"source_currency": SANDBOX_USDC})
    call("POST", f"/pay-orders/{orders[3]}/simulate-payment", {"amount": "2"})
    # Refundable once confirmed (sandbox blocks are a second long, checks follow).
    deadline = time.monotonic() + 30
    while not all(t["status"] == "confirmed"
                  for t in call("GET", f"/pay-orders/{orders[3]}")["transfers"]):
        if time.monotonic() > deadline:
            raise SystemExit("fuzz hooks: the partial payment was not confirmed within 30 s")
        time.sleep(0.2)
    refunds = [call("POST", f"/pay-orders/{orders[3]}/refunds", {
        "amount": "0.5", "address": "0x1111111111111111111111111111111111111111",
        "reason": "fuzz"})["id"]]
    events = [e["id"] for e in call("GET", "/events?limit=20")["data"]]
    # Keys of their own for revoke and roll to act on (never the key the run signs with).
    keys = [call("POST", "/api-keys", {"name": f"fuzz {i}", "scopes": ["orders:read"]})["id"]
            for i in range(3)]
    masked = f"{API_KEY[:12]}…{API_KEY[-4:]}"
    own = [k["id"] for k in call("GET", "/api-keys?limit=100")["data"] if k["masked_key"] == masked]
    if len(own) != 1:
        raise SystemExit(f"fuzz hooks: the run's own key ({masked}) is not listed once: {own}")
    deliveries = []
    for ep in endpoints:
        deliveries += [d["id"] for d in call("GET", f"/webhook-endpoints/{ep}/deliveries")["data"]]
    return own[0], {
        "/pay-orders/": {"id": orders, "refund_id": refunds},
        "/webhook-endpoints/": {"id": endpoints, "delivery_id": deliveries},
        "/events/": {"id": events},
        "/api-keys/": {"id": keys},
        # 84532 prices every SALE: only the Sepolia wallet may be deleted.
        "/merchant-wallets/": {"chain_id": [84532, 11155111]},
    }


OWN_KEY_ID, POOLS = seed()


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    """Three generated ids in four become a seeded one (chosen from the generated value, so
    a run stays reproducible from its seed); the fourth stays, for the unknown-id paths.
    DELETE only ever gets the last seeded object (a webhook endpoint, the Sepolia wallet):
    the others stay for the rest of the run."""
    if not path_parameters:
        return path_parameters
    op = context.operation
    pools = next((p for prefix, p in POOLS.items() if op.path.startswith(prefix)), {})
    for name, value in list(path_parameters.items()):
        pool = pools.get(name)
        if not pool:
            continue
        if op.method.upper() == "DELETE":
            pool = pool[-1:]
        pick = zlib.crc32(repr(value).encode())
        if pick % 4:
            path_parameters[name] = pool[pick % len(pool)]
    return path_parameters


@schemathesis.hook
def before_call(context, case, kwargs):
    kwargs["auth"] = SignV2()
    # The run's own key never revokes or rolls itself, whatever id the generator or a link
    # found (GET /api-keys lists it): every later request would be a 401, and most of a long
    # campaign would test authentication alone. A seeded key takes its place.
    params = case.path_parameters or {}
    if (case.operation.method.upper() == "POST" and case.operation.path.startswith("/api-keys/")
            and params.get("id") == OWN_KEY_ID):
        params["id"] = POOLS["/api-keys/"]["id"][0]


# What the run sent, printed when it ends: requests per operation and answers per status.
SENT = collections.Counter()
STATUSES = collections.Counter()
COUNTING = threading.Lock()  # --workers calls from several threads


@schemathesis.hook
def after_call(context, case, response):
    with COUNTING:
        SENT[f"{case.operation.method.upper()} {case.operation.path}"] += 1
        STATUSES[response.status_code] += 1


@atexit.register
def summary():
    if not SENT:
        return
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(STATUSES.items()))
    print(f"fuzz: {sum(SENT.values())} requests to {len(SENT)} operations; answers {statuses}")
    for op, n in sorted(SENT.items()):
        print(f"fuzz:   {n:6d}  {op}")
    if os.environ.get("FUZZ_STATS"):
        with open(os.environ["FUZZ_STATS"], "w") as f:
            json.dump({"requests": sum(SENT.values()), "operations": SENT,
                       "statuses": {str(k): v for k, v in STATUSES.items()}}, f)
