"""No page blocks another (issue 12): the latency of small requests through one gate worker, alone and
while 5 MB pages stream through the same worker, in one run.

One origin (Debian's nginx, as bench/proxy.py finds it) serves a 1 KB JSON answer, a 100 KB job-list
page and a 5 MB one (``gate.demo.bench_page("1m")``'s body repeated, about 5 MB), the pages gzip-
compressed on the fly as nginx does for browsers. One ``gate serve`` per variant (one worker, access log
and ledger on) stands in front.

- small: one client asks for the JSON answer ``--requests`` times, one request after the other, and
  times each (p50, p99, max).
- big: ``--big`` clients each fetch the 5 MB page again and again with ``Accept-Encoding: gzip, br``
  (as a browser does: gate reads nginx's gzip, rewrites the page, and sends it compressed), for as long
  as the small client runs; the median time of one 5 MB page is given too.
- 100 KB: the 100 KB page fetched alone, ``--requests`` / 5 times (its p50), with ``gzip, br``: a page
  that fits in one slice must not pay for the slicing.

The small client runs three times per variant and round: alone, with the big clients, alone again.
Variants (``--variants``, default: the product's own) are the same gate with the page path's knobs set
differently (gate.pagebody, gate.decoders, gate.encoders; see VARIANTS), interleaved round by round
(``--rounds``), so they meet the same machine. The table pools each variant's rounds.

    python bench/headofline.py [--requests 300] [--big 2] [--rounds 2] [--variants default,yield-0.5ms]
"""

from __future__ import annotations

import argparse
import http.client
import json
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

ORIGIN_PORT, GATE_PORT = 9141, 9142  # one gate per variant from GATE_PORT on
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

# The page path's knobs per variant ("module.attribute": value), set in the gate process before it serves.
VARIANTS: dict[str, dict[str, object]] = {
    # the product as it ships: 16 KB pieces; a page's first turn up to 0.5 ms, each later one a piece;
    # what the turns made sent (compressed: flushed) at 128 KB or at the end of each origin chunk
    "default": {},
    # as the code before: 64 KB pieces, a turn each time the page held the loop 0.5 ms, sent every turn
    "yield-0.5ms-64k": {
        "gate.decoders.PIECE": 64 * 1024,
        "gate.pagebody.NEXT_SLICE_PIECES": 1_000_000,
        "gate.pagebody.NEXT_SLICE_SECONDS": 0.0005,
        "gate.pagebody.SEND_BYTES": 1,
    },
    "turn-2x16k": {"gate.pagebody.NEXT_SLICE_PIECES": 2},
    "turn-0.1ms": {"gate.pagebody.NEXT_SLICE_PIECES": 1_000_000, "gate.pagebody.NEXT_SLICE_SECONDS": 0.0001},
    "send-each-turn": {"gate.pagebody.SEND_BYTES": 1},  # sent and flushed every 16 KB piece
    "send-32k": {"gate.pagebody.SEND_BYTES": 32 * 1024},
    "send-64k": {"gate.pagebody.SEND_BYTES": 64 * 1024},
    # br at quality 1 instead of 4 (for every page: what compression costs the large ones)
    "br1": {"gate.encoders.BrotliEncoder.__init__.__defaults__": (1,)},
}
BOOT = """
import importlib, json, sys
knobs = json.loads(sys.argv.pop(1))
if "path" in knobs:  # --baseline: gate from another checkout
    sys.path.insert(0, knobs.pop("path"))
    # pip install -e's import hook would find this checkout's gate before sys.path does
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
turns_file = knobs.pop("turns_file", None)
for name, value in knobs.items():
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest module prefix, then attributes
        try:
            target = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            continue
    for part in parts[i:-1]:
        target = getattr(target, part)
    if not hasattr(target, parts[-1]):
        raise SystemExit(f"unknown knob {name}")
    if name == "sys.setswitchinterval":
        sys.setswitchinterval(value)
    else:
        setattr(target, parts[-1], tuple(value) if isinstance(value, list) else value)
if turns_file:  # --turns: each slice of a page's work (_Turns._run), its wall and CPU (this thread's) time
    import atexit, time
    import gate.pagebody as pagebody
    spent = []
    run = pagebody._Turns._run
    def timed(self, pieces):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return run(self, pieces)
        finally:
            spent.append((time.perf_counter() - wall, time.thread_time() - cpu))
    pagebody._Turns._run = timed
    atexit.register(lambda: open(turns_file, "w").write(json.dumps(spent)))
from gate.cli import main
sys.exit(main(sys.argv[1:]))
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


def timed_run(port: int, n: int, path: str = "/small.json", headers: dict[str, str] | None = None) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        get(conn, path, headers or {})
        out.append(1000 * (time.perf_counter() - t))
    conn.close()
    return out


def big_loop(port: int, stop: threading.Event, times: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        t = time.perf_counter()
        get(conn, "/big.html", BROWSER)
        times.append(1000 * (time.perf_counter() - t))
    conn.close()


BROWSER = {"Accept-Encoding": "gzip, br"}


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))]


def one_round(port: int, args: argparse.Namespace, got: dict[str, list[float]]) -> None:
    got["100 KB page"] += timed_run(port, max(10, args.requests // 5), "/page.html", BROWSER)
    got["alone"] += timed_run(port, args.requests)
    stop, times = threading.Event(), got["5 MB page"]
    threads = [threading.Thread(target=big_loop, args=(port, stop, times)) for _ in range(args.big)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    got["with pages"] += timed_run(port, args.requests)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    got["alone, after"] += timed_run(port, args.requests)
    got["5 MB alone"] += timed_run(port, 5, "/big.html", BROWSER)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--big", type=int, default=2, help="clients fetching the 5 MB page (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, each variant once per round (default 2)")
    ap.add_argument("--variants", default="default", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--baseline", metavar="DIR", help="also gate as checked out in DIR (its gate/ package)")
    ap.add_argument("--turns", action="store_true", help="time each slice of a page's work (not --baseline)")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.baseline:
        VARIANTS["baseline"] = {"path": str(Path(args.baseline).resolve())}
        names.insert(0, "baseline")
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    from gate.demo import bench_page

    tmp = Path(tempfile.mkdtemp(prefix="gate-bench-hol-"))
    tmp.chmod(0o755)
    (tmp / "www").mkdir()
    page = big_page()
    (tmp / "www" / "big.html").write_bytes(page)
    (tmp / "www" / "page.html").write_bytes(bench_page("100k"))
    (tmp / "www" / "small.json").write_bytes(b'{"jobs": [' + b",".join(b"%d" % i for i in range(250)) + b"]}")
    (tmp / "nginx.conf").write_text(CONF.format(tmp=tmp, port=ORIGIN_PORT))
    procs: list[subprocess.Popen] = []
    phases = ("100 KB page", "alone", "with pages", "alone, after", "5 MB page", "5 MB alone")
    runs = {name: {phase: [] for phase in phases} for name in names}
    try:
        procs.append(subprocess.Popen([nginx_binary(), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        wait_up(f"http://127.0.0.1:{ORIGIN_PORT}/small.json", procs[-1], "nginx")
        env = {**os.environ, "GATE_SECRET_KEY": "bench-key-0123456789abcdef-0123456789"}
        ports = {}
        for i, name in enumerate(names):
            ports[name] = GATE_PORT + i
            (tmp / f"gate-{i}").mkdir()
            knobs = dict(VARIANTS[name])
            if args.turns and name != "baseline":
                knobs["turns_file"] = str(tmp / f"turns-{i}.json")
            cmd = [sys.executable, "-c", BOOT, json.dumps(knobs)]
            cmd += ["serve", "--upstream", f"http://127.0.0.1:{ORIGIN_PORT}", "--port", str(ports[name])]
            log = open(tmp / f"gate-{i}.log", "wb")
            procs.append(subprocess.Popen(cmd, env=env, cwd=tmp / f"gate-{i}", stderr=log))
            wait_up(f"http://127.0.0.1:{ports[name]}/small.json", procs[-1], f"gate ({name})")
            timed_run(ports[name], 50)  # warm-up
            timed_run(ports[name], 3, "/big.html", BROWSER)
        for _ in range(args.rounds):
            for name in names:
                one_round(ports[name], args, runs[name])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM if p is not procs[0] else signal.SIGQUIT)
        for p in procs:
            p.wait(timeout=20)
        turns = {name: tmp / f"turns-{i}.json" for i, name in enumerate(names)}
        spent = {name: json.loads(f.read_text()) for name, f in turns.items() if f.exists()}
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"small: 1 KB JSON, {args.requests} sequential requests per run; big: {len(page):,} B page, "
        f"{args.big} clients; {args.rounds} round(s); load average {os.getloadavg()[0]:.2f}"
    )
    print("ms; small: p50/p99 (max); 100 KB and 5 MB: p50 of one page, the 5 MB page alone or under the load")
    print(
        f"{'variant':<16} {'small alone':>13} {'with pages':>21} {'alone after':>13} {'p99-alone':>9}"
        f" {'100KB':>6} {'5MB alone':>9} {'5MB load':>8}"
    )
    for name in names:
        r = runs[name]

        def cell(samples: list[float]) -> str:
            return f"{statistics.median(samples):.2f}/{pct(samples, 0.99):.1f}"

        loaded = f"{cell(r['with pages'])} ({max(r['with pages']):.0f})"
        print(
            f"{name:<16} {cell(r['alone']):>13} {loaded:>21} {cell(r['alone, after']):>13}"
            f" {pct(r['with pages'], 0.99) - pct(r['alone'], 0.99):+9.1f}"
            f" {statistics.median(r['100 KB page']):6.2f} {statistics.median(r['5 MB alone']):9.1f}"
            f" {statistics.median(r['5 MB page']):8.1f}"
        )

    for name, times in spent.items():
        walls, cpus = sorted(w for w, _ in times), sorted(c for _, c in times)
        long = [(w, c) for w, c in times if w > 0.002]
        print(
            f"{name}: {len(times)} slices of a page (_Turns._run: a turn or part of one);"
            f" wall p50 {1000 * pct(walls, 0.5):.3f} p99 {1000 * pct(walls, 0.99):.3f} max {1000 * walls[-1]:.2f} ms,"
            f" CPU p99 {1000 * pct(cpus, 0.99):.3f} max {1000 * cpus[-1]:.2f} ms; {len(long)} over 2 ms of wall"
            f" time, {sum(c > 0.001 for _, c in long)} of them over 1 ms of CPU"
        )


if __name__ == "__main__":
    main()
