"""No page blocks another (issue 12): the latency of small requests through one gate worker, alone and
while 5 MB pages stream through the same worker, in one run.

One origin (Debian's nginx, as bench/proxy.py finds it) serves a 1 KB JSON answer and a 5 MB job-list
page (``gate.demo.bench_page("1m")``'s body repeated, about 5 MB), the page gzip-compressed on the fly as
nginx does for browsers. One ``gate serve`` (one worker, access log and ledger on) stands in front.

- small: one client asks for the JSON answer ``--requests`` times, one request after the other, and
  times each (p50, p99, max).
- big: ``--big`` clients each fetch the 5 MB page again and again with ``Accept-Encoding: gzip, br``
  (as a browser does: gate reads nginx's gzip, rewrites the page, and sends it compressed), for as long
  as the small client runs.

The small client runs three times, interleaved: alone, with the big clients, alone again; the table
gives each and the difference of p99 against the first run alone.

    python bench/headofline.py [--requests 400] [--big 2]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from proxy import nginx_binary, wait_up  # noqa: E402

ORIGIN_PORT, GATE_PORT = 9141, 9142
CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    types {{ text/html html; application/json json; }}
    keepalive_requests 1000000;
    gzip on; gzip_comp_level 1;  # text/html is always among gzip_types
    server {{ listen 127.0.0.1:{port}; root {tmp}/www; }}
}}
"""


def big_page() -> bytes:
    from gate.demo import bench_page

    page = bench_page("1m")
    head, _, rest = page.partition(b"<body")
    body, _, tail = rest.partition(b"</body>")
    return head + b"<body" + body * 5 + b"</body>" + tail


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    n = len(r.read())
    if r.status != 200:
        raise SystemExit(f"{path}: {r.status}")
    return n


def small_run(n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", GATE_PORT, timeout=60)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        get(conn, "/small.json", {})
        out.append(1000 * (time.perf_counter() - t))
    conn.close()
    return out


def big_loop(stop: threading.Event, pages: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", GATE_PORT, timeout=120)
    while not stop.is_set():
        get(conn, "/big.html", {"Accept-Encoding": "gzip, br"})
        pages.append(1)
    conn.close()


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--big", type=int, default=2, help="clients fetching the 5 MB page (default 2)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gate-bench-hol-"))
    tmp.chmod(0o755)
    (tmp / "www").mkdir()
    page = big_page()
    (tmp / "www" / "big.html").write_bytes(page)
    (tmp / "www" / "small.json").write_bytes(b'{"jobs": [' + b",".join(b"%d" % i for i in range(250)) + b"]}")
    (tmp / "nginx.conf").write_text(CONF.format(tmp=tmp, port=ORIGIN_PORT))
    (tmp / "gate").mkdir()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([nginx_binary(), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        wait_up(f"http://127.0.0.1:{ORIGIN_PORT}/small.json", procs[-1], "nginx")
        gate = str(Path(sys.executable).parent / "gate")
        env = {**os.environ, "GATE_SECRET_KEY": "bench-key-0123456789abcdef-0123456789"}
        cmd = [gate, "serve", "--upstream", f"http://127.0.0.1:{ORIGIN_PORT}", "--port", str(GATE_PORT)]
        log = open(tmp / "gate.log", "wb")
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp / "gate", stderr=log))
        wait_up(f"http://127.0.0.1:{GATE_PORT}/small.json", procs[-1], "gate")
        small_run(50)  # warm-up
        runs: dict[str, list[float]] = {}
        runs["alone"] = small_run(args.requests)
        stop, pages = threading.Event(), []
        threads = [threading.Thread(target=big_loop, args=(stop, pages)) for _ in range(args.big)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        runs[f"with {args.big} x 5 MB pages"] = small_run(args.requests)
        seconds = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join(timeout=120)
        runs["alone, after"] = small_run(args.requests)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM if p is not procs[0] else signal.SIGQUIT)
        for p in procs:
            p.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"small: 1 KB JSON, {args.requests} sequential requests per run; big: {len(page):,} B page, "
        f"{len(pages)} fetched in {seconds:.1f} s; load average {os.getloadavg()[0]:.2f}"
    )
    base = pct(runs["alone"], 0.99)
    print(f"{'run':<26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99 - alone':>12}")
    for name, samples in runs.items():
        print(
            f"{name:<26} {statistics.median(samples):8.2f} {pct(samples, 0.99):8.2f} {max(samples):8.2f}"
            f" {pct(samples, 0.99) - base:+12.2f}"
        )


if __name__ == "__main__":
    main()
