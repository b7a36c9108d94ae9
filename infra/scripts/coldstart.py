"""Cold starts of Lambda binaries against a local fake of the Lambda Runtime API.

For each binary, in rounds (so that a noisy moment of the machine hits every binary alike;
each round in its own shuffled order, so that no binary always follows the same one):
  init         exec -> the function's first poll of the Runtime API (what a cold start costs
               before the first event can be handed over), timed on a bare socket the main
               thread waits on: the poll's bytes are stamped as they arrive, with no HTTP
               server thread or polling interval between them and the clock
  first event  exec -> the function's answer to its sample event (events/<name>.json), with
               its adapters pointed at the test services (moto, the local chain) of DIR/env
Median of RUNS of each, the ratio of each init to the baseline's (the first binary, a
hello-world lambda_runtime function), and each binary's size and zipped size (what Lambda
loads). Prints a Markdown table; with --json FILE also writes the figures.

Usage: coldstart.py [--runs N] [--events DIR] [--json FILE] [--template FILE] BASELINE BINARY...
The environment names the services (AWS_ENDPOINT_URL, PAYORDERS_TABLE, queue URLs, RPC URLs).
Each BINARY is named for its function (a link to its bundle's binary) and runs with that name
as _HANDLER, as Lambda passes the function's Handler. With --template, each function gets only
the queue URLs (PAYORDERS_*_QUEUE_URL) its resource in the SAM template sets, as in AWS (a
function built without SQS refuses a queue URL).
"""
import argparse
import http.server
import io
import json
import os
import random
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
import zipfile

ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=30)
ap.add_argument("--events", default="events")
ap.add_argument("--json")
ap.add_argument("--template")
ap.add_argument("baseline")
ap.add_argument("binaries", nargs="+")
args = ap.parse_args()

state = {}
lock = threading.Lock()


class Runtime(http.server.BaseHTTPRequestHandler):
    """The Runtime API for first events: the first poll is handed the event, and the answer
    (a response or an error) is timed; further polls are held. (Inits are timed on their own
    socket: see `init_once`.)"""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        now = time.perf_counter()
        with lock:
            first = "poll" not in state
            state.setdefault("poll", now)
            event = state.get("event") if first else None
        if event is None:
            time.sleep(3)  # hold the poll: the function waits, initialised, until killed
            return
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        now = time.perf_counter()
        with lock:
            state.setdefault("answer", now)
            state.setdefault("answer_kind", "error" if self.path.endswith("/error") else "response")
        # Read what was sent (chunked for a streamed response) and acknowledge it.
        length = self.headers.get("Content-Length")
        if length:
            self.rfile.read(int(length))
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                self.rfile.read(size + 2)
                if size == 0:
                    break
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a killed function resets its held poll: expected, not worth a traceback


srv = Server(("127.0.0.1", 0), Runtime)
srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
env = dict(
    os.environ,
    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{srv.server_address[1]}",
    AWS_LAMBDA_FUNCTION_NAME="bench",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
    AWS_LAMBDA_FUNCTION_VERSION="1",
    AWS_REGION=os.environ.get("AWS_REGION", "us-east-1"),
    RUST_LOG="warn",
)


def template_queues(path):
    """{function (its Handler): the PAYORDERS_*_QUEUE_URL variables its resource sets}."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import template_functions

    return {f["handler"]: f["queues"] for f in template_functions.functions(path)}


queues = template_queues(args.template) if args.template else None


def env_of(binary):
    """The environment of `binary` (named for its function): its queues only, and the
    function's name as its Handler, which a bundle reads to know which function it is."""
    name = os.path.basename(binary)
    out = dict(env, _HANDLER=name)
    if queues is None or name not in queues:
        return out
    return {k: v for k, v in out.items() if not k.endswith("_QUEUE_URL") or k in queues[name]}


def first_event(binary, event):
    """Seconds from exec to the function's answer to `event`, and the answer's kind."""
    with lock:
        state.clear()
        state["event"] = event
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env_of(binary), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - t0 < 20:
            with lock:
                if "answer" in state:
                    return state["answer"] - t0, state["answer_kind"]
            if p.poll() is not None:
                break
            time.sleep(0.0002)
        err = p.stderr.read().decode(errors="replace")[-2000:] if p.poll() is not None else "(still running)"
        sys.exit(f"{os.path.basename(binary)} never answered its event: {err}")
    finally:
        p.kill()
        p.wait()
        # A request the killed process sent just before (its next poll, after answering) may
        # still be in the server's hands: let it meet this run's state, not the next one's,
        # where it would take the next process's event (which then never answers).
        time.sleep(0.05)


# Inits are timed on a socket of their own: the main thread waits on it (select, no timer
# tick) and stamps the first poll when its request has arrived. Nothing answers it: the
# process is killed once timed.
init_sock = socket.socket()
init_sock.bind(("127.0.0.1", 0))
init_sock.listen(16)
init_sock.setblocking(False)
init_api = f"127.0.0.1:{init_sock.getsockname()[1]}"


def init_once(binary):
    """Milliseconds from exec to the moment the function's first poll has arrived."""
    sel = selectors.DefaultSelector()
    sel.register(init_sock, selectors.EVENT_READ)
    conn = None
    got = b""
    run_env = dict(env_of(binary), AWS_LAMBDA_RUNTIME_API=init_api)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - t0 < 20:
            if not sel.select(timeout=0.05):
                if p.poll() is not None:
                    break
                continue
            if conn is None:
                conn, _ = init_sock.accept()
                conn.setblocking(False)
                sel.unregister(init_sock)
                sel.register(conn, selectors.EVENT_READ)
                continue
            chunk = conn.recv(65536)
            got += chunk
            if b"\r\n\r\n" in got:
                at = time.perf_counter()
                if not got.startswith(b"GET ") or b"/runtime/invocation/next" not in got.split(b"\r\n")[0]:
                    sys.exit(f"{os.path.basename(binary)} sent {got[:200]!r} as its first request")
                return (at - t0) * 1000
            if not chunk:
                break
        err = p.stderr.read().decode(errors="replace")[-2000:] if p.poll() is not None else "(still running)"
        sys.exit(f"{os.path.basename(binary)} never reached its first poll: {err}")
    finally:
        p.kill()
        p.wait()
        if conn is not None:
            conn.close()
        sel.close()


def sizes(binary):
    raw = os.path.getsize(binary)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(binary, "bootstrap")
    return raw, len(buf.getvalue())


binaries = [args.baseline] + args.binaries
events = {}
for b in args.binaries:
    path = os.path.join(args.events, os.path.basename(b) + ".json")
    events[b] = json.load(open(path)) if os.path.exists(path) else None
events[args.baseline] = {"hello": "world"}
inits = {b: [] for b in binaries}
firsts = {b: [] for b in binaries}
kinds = {}
shuffle = random.Random(14)
for _ in range(args.runs):
    for b in shuffle.sample(binaries, len(binaries)):
        inits[b].append(init_once(b))
for _ in range(max(3, args.runs // 3)):
    for b in shuffle.sample(binaries, len(binaries)):
        if events[b] is not None:
            t, kinds[b] = first_event(b, events[b])
            firsts[b].append(t * 1000)

base = statistics.median(inits[args.baseline])
rows = []
for b in binaries:
    raw, zipped = sizes(b)
    init = statistics.median(inits[b])
    first = statistics.median(firsts[b]) if firsts[b] else None
    rows.append({
        "function": os.path.basename(b),
        "size_bytes": raw,
        "zip_bytes": zipped,
        "init_ms": round(init, 2),
        "init_ratio": round(init / base, 2),
        "first_event_ms": round(first, 1) if first is not None else None,
        "first_event_answer": kinds.get(b),
    })
print(f"Cold starts, median of {args.runs} inits and {max(3, args.runs // 3)} first events each\n")
print("| function | size MB | zip MB | init ms | init / hello | first event ms | answer |")
print("|---|---:|---:|---:|---:|---:|---|")
for r in rows:
    first = "" if r["first_event_ms"] is None else f"{r['first_event_ms']:.1f}"
    print(f"| {r['function']} | {r['size_bytes'] / 1048576:.2f} | {r['zip_bytes'] / 1048576:.2f} | {r['init_ms']:.2f} "
          f"| {r['init_ratio']:.2f}x | {first} | {r['first_event_answer'] or ''} |")
worst = max(rows[1:], key=lambda r: r["init_ratio"])
biggest = max(rows[1:], key=lambda r: r["size_bytes"])
print(f"\nworst init ratio: {worst['function']} {worst['init_ratio']:.2f}x; largest binary: "
      f"{biggest['function']} {biggest['size_bytes'] / 1048576:.2f} MB")
if args.json:
    json.dump({"runs": args.runs, "baseline_init_ms": base, "rows": rows}, open(args.json, "w"), indent=1)
