"""Cold-start benchmark: the time from exec to a function's first poll of the Lambda
Runtime API (its init: runtime, config, clients), against a local fake of that API.
Median of N runs. No AWS call is made at init, so no network is needed.

Usage: initbench.py BINARY RUNS
"""
import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

binary, runs = sys.argv[1], int(sys.argv[2])
first = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        first.setdefault("t", time.perf_counter())
        time.sleep(5)  # hold the poll: the function is initialised and waiting
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{srv.server_address[1]}", AWS_LAMBDA_FUNCTION_NAME="bench",
           AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1", AWS_REGION="us-east-1",
           AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", PAYORDERS_TABLE="t", PAYORDERS_MASTER_KEY="m"*40, PAYORDERS_WEBHOOKS_QUEUE_URL="http://127.0.0.1:9/queue",
           PAYORDERS_CONFIRMATIONS_QUEUE_URL="http://127.0.0.1:9/confirmations", RUST_LOG="warn")
times = []
for _ in range(runs):
    first.clear()
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while "t" not in first and time.perf_counter() - t0 < 10: time.sleep(0.0005)
    times.append((first.get("t", float("nan")) - t0) * 1000)
    p.kill(); p.wait()
if any(t != t for t in times):  # NaN: the function never polled, so its init failed
    p = subprocess.run([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
    sys.exit(f"{os.path.basename(binary)} did not reach its first poll: {p.stderr.decode()[-2000:]}")
print(f"{os.path.basename(binary)}: init to first poll median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}, n={runs})")
