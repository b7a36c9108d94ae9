"""Signed `POST /pay-orders` requests for bench_throughput.sh: one per line, each a unique
SALE body under its own v2 signature (a fresh nonce; the timestamp of generation, so a file
must be used within the 300 s signature window).

    python3 requests.py COUNT OUT            (PAYORDERS_API_KEY, PAYORDERS_API_SECRET from demo.env)
    python3 requests.py COUNT OUT original   the same bodies for the original stack's stand-in

A line is `<signature header value>\\t<JSON body>`; neither holds a tab or a newline.
Ours is shared/src/auth/signature.rs's v2 (the `Authorization-Signature` header): HMAC-SHA256
of "v2\\n" METHOD "\\n" path "\\n" timestamp "\\n" nonce "\\n" hex(SHA-256(body)). The
original's (its `Authorization` header) is hex SHA-512 of key + secret + timestamp, the same
for every request of the file (it signs neither the body nor a nonce).
"""

import hashlib
import hmac
import json
import os
import sys
import time
import uuid


def main():
    count, out = int(sys.argv[1]), sys.argv[2]
    original = sys.argv[3:4] == ["original"]
    key, secret = os.environ["PAYORDERS_API_KEY"], os.environ["PAYORDERS_API_SECRET"]
    run = uuid.uuid4().hex[:12]
    ts = int(time.time())
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    # The original's signature covers neither body nor nonce: one for the whole file.
    digest = hashlib.sha512(f"{key}{secret}{ts}".encode()).hexdigest()
    original_header = f"APIKey={key},signature={digest},timestamp={ts}"
    with open(out, "w") as f:
        for i in range(count):
            body = json.dumps(
                {
                    "mode": "SALE",
                    "amount": f"{10 + i % 9000}.{i % 100:02d}",
                    "fiat_unit": "USD",
                    "metadata": {"bench_run": run, "n": i},
                },
                separators=(",", ":"),
            ).encode()
            if original:
                header = original_header
            else:
                body_sha = hashlib.sha256(body).hexdigest()
                nonce = f"{run}{i:x}"
                m = mac.copy()
                m.update(f"v2\nPOST\n/pay-orders\n{ts}\n{nonce}\n{body_sha}".encode())
                header = (
                    f"v=2,APIKey={key},timestamp={ts},nonce={nonce},"
                    f"body_sha256={body_sha},signature={m.hexdigest()}"
                )
            f.write(f"{header}\t{body.decode()}\n")


if __name__ == "__main__":
    main()
