"""The hosted checkout page in a real browser, against a running `make dev`.

Headless Chromium (Debian's, driven by Playwright for Python) opens a signed SALE's
`hosted_url` at phone width and:
  1. sees the merchant's name and theme, the items and the total;
  2. picks USDC on Base Sepolia (keyboard), then sees amount, address, network, countdown,
     the QR code and the "Open in wallet app" link; the QR code decodes (zbarimg) to exactly
     the URI the page shows;
  3. the order is paid with `simulate-payment`, first 20 USDC: the page shows over
     Server-Sent Events (timed) what is left, and the QR code follows; then the rest:
     payment detected, confirmations, "Paid", and back to `redirect_url` (the link, then
     by itself);
  4. another order, cancelled by the merchant while its page is open, says so;
  5. two orders whose time to pay runs out while their pages are open (the view answered
     with 2 s left) show no address, QR code, wallet button or cancel link; the one partly
     paid says what arrived, the other that a payment sent in time still counts;
  6. an unknown id shows the 404 page;
  7. nothing was loaded from outside the host, and the console stayed free of errors.
It saves the page (at step 2) as docs/checkout.png, and prints the page's weight and the
time from the simulated payment to the page showing it.

Credentials and the API come from $PAYORDERS_LOCAL_DIR/demo.env (.local), which `make dev`
writes; API calls go through `payorders api` (which signs). Environment: PAYORDERS_BIN
(target/debug/payorders), CHROMIUM (/usr/bin/chromium), BROWSER_TIMEOUT (seconds per wait,
15), SCREENSHOT (docs/checkout.png; empty for none).
"""

import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCAL = os.environ.get("PAYORDERS_LOCAL_DIR", os.path.join(ROOT, ".local"))
BIN = os.environ.get("PAYORDERS_BIN", os.path.join(ROOT, "target", "debug", "payorders"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = int(float(os.environ.get("BROWSER_TIMEOUT", "15")) * 1000)
SCREENSHOT = os.environ.get("SCREENSHOT", os.path.join(ROOT, "docs", "checkout.png"))
MERCHANT = "https://merchant.example"

start = time.monotonic()


def step(text):
    print(f"[{time.monotonic() - start:6.2f}s] {text}", flush=True)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def load_env():
    path = os.path.join(LOCAL, "demo.env")
    env = dict(os.environ)
    env.pop("CHAIN", None)
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("export ") and "=" in line:
                    k, v = line[len("export "):].strip().split("=", 1)
                    if k != "PATH":
                        env[k] = v
    except FileNotFoundError:
        raise Failed(f"no {path}: start `make dev` first")
    check("API" in env, f"{path} has no API")
    return env


def api(env, method, path, body=None):
    cmd = [BIN, "--dir", LOCAL, "api", method, path]
    if body is not None:
        cmd.append(json.dumps(body))
    if method == "POST":
        cmd += ["--idempotency-key", str(uuid.uuid4())]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise Failed(f"{method} {path}: {r.stderr.strip() or r.stdout.strip()}")
    return json.loads(r.stdout)


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


def wait_js(page, expression, what, timeout_ms=None):
    """Polls a JavaScript expression until it is truthy. (Playwright's wait_for_function
    evaluates its predicate with eval, which the page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + (timeout_ms or TIMEOUT_MS) / 1000
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.02)
    raise Failed(f"{what}: not within {(timeout_ms or TIMEOUT_MS) / 1000:.0f} s")


def decode_qr(png):
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        f.write(png)
        f.flush()
        r = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", f.name],
                           capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise Failed(f"zbarimg found no QR code: {r.stderr.strip()}")
    return r.stdout.strip()


def main():
    env = load_env()
    base = env["API"].rstrip("/")
    host = urlparse(base).netloc

    settings = api(env, "POST", "/settings/checkout",
                   {"display_name": "Demo Store", "theme_color": "#0f766e", "hide_footer": False})
    check(settings["display_name"] == "Demo Store", f"settings: {settings}")
    order = api(env, "POST", "/pay-orders", {
        "mode": "SALE",
        "amount": "49.99",
        "fiat_unit": "USD",
        "metadata": {"items": [{"name": "Premium Widget", "quantity": 1, "unit_price": 39.99},
                               {"name": "Gift wrap", "quantity": 1, "unit_price": 10.00}],
                     "cart": "internal-cart-7"},
        "redirect_url": f"{MERCHANT}/thanks",
        "cancel_url": f"{MERCHANT}/cart",
        "expires_in": 900,
    })
    order_id, hosted = order["id"], order["hosted_url"]
    check(hosted == f"{base}/pay/{order_id}", f"hosted_url {hosted}")
    step(f"order {order_id}: {hosted}")

    status, html = fetch(hosted)
    check(status == 200, f"GET {hosted}: {status}")
    weight = len(html)
    weight_gz = len(gzip.compress(html, 9))

    console_errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda m: console_errors.append(f"{m.text} ({m.location.get('url', '')})")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(str(e)))

        def route(r):
            u = urlparse(r.request.url)
            if u.scheme in ("data", "blob") or u.netloc == host:
                return r.continue_()
            if r.request.url.startswith(MERCHANT):
                return r.fulfill(status=200, content_type="text/html",
                                 body="<!doctype html><title>Thanks</title><h1>Thanks</h1>")
            outside.append(r.request.url)
            return r.abort()

        page.route("**/*", route)

        # 1. The merchant, the items, the total.
        page.goto(hosted)
        page.wait_for_selector("#choose:not([hidden])")
        check(page.text_content("#merchant") == "Demo Store", "merchant name")
        check(page.title().startswith("Pay Demo Store"), f"title {page.title()}")
        accent = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--accent')")
        check(accent.strip() == "#0f766e", f"theme colour {accent}")
        check("Premium Widget" in page.text_content("#items"), "items")
        check("internal-cart-7" not in page.content(), "metadata leaked into the page")
        check(page.text_content("#total").strip() == "49.99 USD", "total")
        check(page.get_attribute("#cancel", "href") == f"{MERCHANT}/cart", "cancel link")
        check(page.is_visible("text=Test mode"), "test mode badge")
        step("page shows Demo Store, 2 items, 49.99 USD, a cancel link")

        # 2. Pick USDC on Base Sepolia with the keyboard; then amount, address, QR.
        choice = page.locator("label.choice", has_text="USDC").filter(has_text="Base Sepolia")
        check(choice.count() == 1, "a USDC on Base Sepolia choice")
        page.locator("input[name=currency]").first.focus()
        for _ in range(page.locator("input[name=currency]").count()):
            if choice.locator("input").is_checked():
                break
            page.keyboard.press("ArrowDown")
        check(choice.locator("input").is_checked(), "the keyboard picks a currency")
        page.keyboard.press("Enter")
        page.wait_for_selector("#pay:not([hidden])")
        amount = page.text_content("#amount")
        address = page.text_content("#address")
        uri = page.get_attribute("#open-uri", "href")
        check(amount == "49.99 USDC", f"amount {amount}")
        check(re.fullmatch(r"0x[0-9a-fA-F]{40}", address or ""), f"address {address}")
        check("Base Sepolia" in page.text_content("#network"), "network")
        check(uri == f"ethereum:0x036CbD53842c5426634e7929541eC2318f3dCF7e@84532/transfer"
                     f"?address={address}&uint256=49990000", f"payment URI {uri}")
        wait_js(page, "document.getElementById('qr').complete && document.getElementById('qr').naturalWidth > 0",
                "the QR code loads")
        wait_js(page, "/^\\d+:\\d\\d$/.test(document.getElementById('countdown').textContent)",
                "the countdown runs")
        decoded = decode_qr(page.locator("#qr").screenshot())
        check(decoded == uri, f"the QR code says {decoded!r}, the page {uri!r}")
        for name in ["Copy amount", "Copy address"]:
            check(page.get_by_role("button", name=name).count() == 1, f"button {name}")
        step(f"pays {amount} to {address[:10]}…; QR decodes to the URI shown ({len(uri)} chars)")
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT, full_page=True)
            step(f"screenshot {os.path.relpath(SCREENSHOT, ROOT)}")

        # 2b. A payer who paid without the page names the transaction: it is checked on
        # chain, and what the check says is shown (here, a hash of no chain).
        page.click("#submit-box summary")
        page.fill("#tx-hash", "0x1234")
        page.click("#submit-button")
        wait_js(page, "document.getElementById('submit-error').textContent.length > 0",
                "the page shows why the transaction was refused")
        refusal = page.text_content("#submit-error")
        check(refusal.startswith("That is not a transaction of Base Sepolia"), f"refusal shown: {refusal!r}")
        check(page.is_visible("#pay"), "still on the payment step")
        # The browser logs the refused request; that one is expected.
        refused_log = [m for m in console_errors if "status of 400" in m and m.endswith("/payments)")]
        check(len(refused_log) == 1, f"the refused submission logged once: {console_errors}")
        console_errors.remove(refused_log[0])
        step(f"a transaction named by the payer is checked: {refusal!r}")

        # 3. Paid through the sandbox, first in part: the page follows over SSE, shows what
        # is left, and its QR code asks for exactly that.
        t0 = time.monotonic()
        part = api(env, "POST", f"/pay-orders/{order_id}/simulate-payment", {"amount": "20"})
        check(part["status"] == "PARTIAL_PAYMENT", f"simulated part: {part['status']}")
        wait_js(page, "document.getElementById('status').textContent.startsWith('Partly paid')",
                "the page shows the partial payment")
        partial_ms = (time.monotonic() - t0) * 1000
        check(page.text_content("#amount") == "29.99 USDC", f"still due {page.text_content('#amount')}")
        check(page.text_content("#amount-label") == "Amount still due", "amount label")
        uri = page.get_attribute("#open-uri", "href")
        check(uri.endswith("&uint256=29990000"), f"the URI asks for what is left: {uri}")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while decode_qr(page.locator("#qr").screenshot()) != uri:
            check(time.monotonic() < deadline, "the QR code follows the amount due")
            time.sleep(0.1)
        step(f"page shows the partial payment {partial_ms:.0f} ms after simulate-payment was sent; "
             "29.99 USDC left, the QR code asks for it")
        t0 = time.monotonic()
        paid = api(env, "POST", f"/pay-orders/{order_id}/simulate-payment")
        check(paid["status"] == "AWAITING_CONFIRMATION", f"simulated: {paid['status']}")
        wait_js(page, "/Payment detected|Paid/.test(document.getElementById('status').textContent)",
                "the page shows the payment")
        shown_ms = (time.monotonic() - t0) * 1000
        step(f"page shows the payment {shown_ms:.0f} ms after simulate-payment was sent: "
             f"{page.text_content('#status')!r}")
        wait_js(page, "document.getElementById('status').textContent.startsWith('Paid')",
                "the page shows Paid")
        step("page shows Paid")
        check(page.get_attribute("#return", "href") == f"{MERCHANT}/thanks", "return link")
        check(page.is_hidden("#cancel"), "no cancel link once paid")
        page.wait_for_url(f"{MERCHANT}/thanks", timeout=TIMEOUT_MS)
        step("returned to redirect_url by itself")

        # 5. An order the merchant cancels while its page is open says so.
        other_order = api(env, "POST", "/pay-orders", {
            "mode": "SALE", "amount": "5", "fiat_unit": "USD", "cancel_url": f"{MERCHANT}/cart"})
        page.goto(other_order["hosted_url"])
        page.wait_for_selector("#choose:not([hidden])")
        api(env, "POST", f"/pay-orders/{other_order['id']}/cancel", {"reason": "out of stock"})
        wait_js(page, "/cancelled/.test(document.getElementById('status').textContent)",
                "the page shows the cancellation")
        check(page.is_hidden("#choose") and page.is_hidden("#cancel"), "nothing to do once cancelled")
        step("a cancelled order's page says so")

        # 6. When the time to pay runs out, nothing invites a payment any more, and the page
        # says what a payer who just paid needs to hear. The view is answered with 2 s left
        # (and no live updates, which would bring the server's own count back).
        def two_seconds_left(r):
            resp = r.fetch()
            body = resp.json()
            body["time_remaining"] = 2
            r.fulfill(response=resp, json=body)

        for paid_part in (None, "20"):
            late = api(env, "POST", "/pay-orders", {
                "mode": "SALE", "amount": "49.99", "fiat_unit": "USD", "cancel_url": f"{MERCHANT}/cart"})
            api(env, "POST", f"/pay-orders/{late['id']}/payment-details",
                {"source_currency": {"chain_id": 84532, "address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}})
            if paid_part:
                api(env, "POST", f"/pay-orders/{late['id']}/simulate-payment", {"amount": paid_part})
            page.route(f"**/public/pay-orders/{late['id']}", two_seconds_left)
            page.route(f"**/public/pay-orders/{late['id']}/events*",
                       lambda r: r.fulfill(status=200, content_type="text/event-stream", body=""))
            page.goto(late["hosted_url"])
            page.wait_for_selector("#pay:not([hidden])")
            wait_js(page, "/time to pay (has )?r[au]n out/.test(document.getElementById('status').textContent)",
                    "the page says the time to pay ran out", timeout_ms=6000)
            check(page.is_hidden("#pay") and page.is_hidden("#wallet") and page.is_hidden("#cancel"),
                  "no address, QR code, wallet button or cancel link once the time ran out")
            check(page.is_visible("#submit-box"), "a payer who paid in time can still name the transaction")
            text = page.text_content("#status")
            if paid_part:
                check("after 20.0 of 49.99 USDC had arrived" in text, f"what arrived: {text!r}")
            else:
                check("A payment sent before then still counts" in text, f"a payer who just paid: {text!r}")
        step("once the time to pay runs out: no address, QR code or wallet button; "
             "what arrived, or that a payment sent in time still counts, and where to name it")

        # 7. Unknown ids (a page of its own: a 404 document is logged as a failed load).
        other = ctx.new_page()
        missing = other.goto(f"{base}/pay/po_1111111111111111111111")
        check(missing.status == 404, f"unknown id: {missing.status}")
        check("not found" in other.text_content("h1"), "404 page")
        browser.close()

    check(not outside, f"loaded from outside: {outside}")
    check(not console_errors, f"console errors: {console_errors}")
    step(f"page weight: {weight} bytes of HTML+CSS+JS, {weight_gz} gzipped; no console errors; "
         "nothing loaded from outside")
    print(f"checkout: weight {weight} B ({weight_gz} B gzipped); a simulated payment shown after "
          f"{partial_ms:.0f} ms (partial) and {shown_ms:.0f} ms (the rest)")


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"browser test FAILED: {e}", file=sys.stderr)
        sys.exit(1)
