"""gate's proxy leg against the parts it is made of, as a user runs it, in one run (issue 12).

One origin (Debian's nginx, as the tests unpack it) serves the same 100 KB job page
(``gate.demo.bench_page("100k")``, text/html, identity) and a 200 KiB image (random bytes, image/jpeg).
Each row is a server of its own on loopback in front of that origin:

  nginx proxy_pass                  the same nginx, a second server block, keep-alive to the origin
  bare pass-through, pool 8         starlette + httpx streaming (uvicorn, uvloop, httptools), httpx pool
                                    capped at 8 connections
  bare pass-through, uncapped       the same, httpx's pool uncapped
  bare + lol-html, pool 8           the bare pass-through, pages rewritten by python-lolhtml as they
                                    stream (the naive job of bench/rewrite.py)
  gate, gating off                  bench/serve.py gate-off: gate's proxy path, no rewrite, no access log
  gate serve (undecided)            ``gate serve --upstream …`` started as the CLI does: access log on
                                    (JSON lines to a file), ledger and receipts on (SQLite), no cookie

The load is ``wrk`` (Debian package wrk): for each row and URL, a 1 s warm-up, then ``--duration``
seconds at 1 connection (``--latency``: its p50) and at 32 connections over 2 threads (requests/s). The
rows are interleaved, round by round, so drift on a shared machine falls on every row alike; with
``--rounds`` > 1 each figure is the median of the rounds. Every server is started here and stopped by
its PID. A cell with non-2xx answers or socket errors is marked ``!``.

    python bench/proxy.py                     # about 3 minutes here
    python bench/proxy.py --duration 3 --rounds 2 --json /tmp/proxy.json
    python bench/proxy.py serve-bare --port 9112 --upstream http://127.0.0.1:9110 --pool 8 [--lolhtml]

The goals of issue 12 are printed after the table, each as the ratio it is judged by.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

PORTS = {
    "origin": 9110,
    "nginx": 9111,
    "bare8": 9112,
    "bare": 9113,
    "lolhtml": 9114,
    "gate-off": 9115,
    "gate": 9116,
    "baseline": 9117,
}
ROWS = {  # row key -> label
    "nginx": "nginx proxy_pass",
    "bare8": "bare pass-through, pool 8",
    "bare": "bare pass-through, uncapped",
    "lolhtml": "bare + lol-html, pool 8",
    "gate-off": "gate, gating off",
    "gate": "gate serve, undecided",
    "baseline": "gate serve, --baseline",
}
PAGE, IMAGE = "/page.html", "/image.jpg"
HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"host"})


# -- the bare pass-through ------------------------------------------------------------------------
def serve_bare(port: int, upstream: str, pool: int, lolhtml: bool) -> None:
    """The bare pass-through (``bare_app``) served by uvicorn with uvloop and httptools, no access log."""
    import uvicorn

    uvicorn.run(
        bare_app(upstream, pool, lolhtml),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def bare_app(upstream: str, pool: int, lolhtml: bool):  # a Starlette app (starlette is imported late)
    """starlette + httpx, streaming both ways as little as a proxy can: no header rewriting beyond
    hop-by-hop, no logging. ``pool`` 0: httpx's pool uncapped."""
    import httpx
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    limits = (
        httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        if pool
        else httpx.Limits(max_connections=None, max_keepalive_connections=None)
    )
    client = httpx.AsyncClient(base_url=upstream, limits=limits, timeout=30)

    async def rewritten(chunks):
        from rewrite import lolhtml_rewriter

        out = bytearray()
        rw = lolhtml_rewriter(out.extend)
        async for chunk in chunks:
            rw.write(chunk)
            if out:
                yield bytes(out)
                out.clear()
        rw.end()
        if out:
            yield bytes(out)

    async def proxy(request: Request) -> StreamingResponse:
        headers = [(k, v) for k, v in request.headers.raw if k not in HOP]
        outbound = client.build_request(request.method, request.url.path, headers=headers)
        r = await client.send(outbound, stream=True)
        page = lolhtml and r.headers.get("content-type", "").startswith("text/html")
        drop = HOP | {b"content-length", b"date", b"server"} if page else HOP | {b"date", b"server"}
        out = {k.decode("latin-1"): v.decode("latin-1") for k, v in r.headers.raw if k.lower() not in drop}
        body = rewritten(r.aiter_raw()) if page else r.aiter_raw()
        return StreamingResponse(body, status_code=r.status_code, headers=out, background=BackgroundTask(r.aclose))

    return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "HEAD"])])


# -- the origin -------------------------------------------------------------------------------------
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    types {{ text/html html; image/jpeg jpg; }}
    keepalive_requests 1000000;
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 32; }}
    server {{ listen 127.0.0.1:{origin}; root {tmp}/www; }}
    server {{
        listen 127.0.0.1:{nginx};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), str(ROOT / ".ci/cache/nginx/usr/sbin/nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    main = Path("/work/main/.ci/cache/nginx/usr/sbin/nginx")  # a worktree has no .ci/cache of its own
    if os.access(main, os.X_OK):
        return str(main)
    raise SystemExit("nginx not found: run tests/run once (it unpacks Debian's nginx under .ci/cache/nginx)")


def write_site(tmp: Path) -> tuple[int, int]:
    from gate.demo import bench_page

    # nginx started as root serves as "nobody", which must reach the pages: a mkdtemp() is 0700.
    tmp.chmod(0o755)
    www = tmp / "www"
    www.mkdir()
    page = bench_page("100k")
    (www / PAGE.lstrip("/")).write_bytes(page)
    (www / IMAGE.lstrip("/")).write_bytes(os.urandom(200 * 1024))
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, origin=PORTS["origin"], nginx=PORTS["nginx"]))
    return len(page), 200 * 1024


# -- servers --------------------------------------------------------------------------------------
def wait_up(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within 30 s")


def start_all(tmp: Path, rows: list[str], procs: dict[str, subprocess.Popen], baseline: str | None = None) -> None:
    """Starts every server into ``procs`` (so the caller can stop what started, should one fail)."""
    origin = f"http://127.0.0.1:{PORTS['origin']}"
    logs = tmp / "logs"
    logs.mkdir()

    def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        with open(logs / f"{name}.log", "wb") as err:
            procs[name] = subprocess.Popen(
                cmd, stdout=err, stderr=err, env={**os.environ, **(env or {})}, cwd=cwd or tmp, start_new_session=True
            )

    spawn("nginx", [nginx_binary(), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    wait_up(origin + PAGE, procs["nginx"], "nginx")
    me = [sys.executable, str(Path(__file__).resolve()), "serve-bare", "--upstream", origin]
    if "bare8" in rows:
        spawn("bare8", me + ["--port", str(PORTS["bare8"]), "--pool", "8"])
    if "bare" in rows:
        spawn("bare", me + ["--port", str(PORTS["bare"]), "--pool", "0"])
    if "lolhtml" in rows:
        spawn("lolhtml", me + ["--port", str(PORTS["lolhtml"]), "--pool", "8", "--lolhtml"])
    if "gate-off" in rows:
        (tmp / "gate-off").mkdir()
        cmd = [sys.executable, str(HERE / "serve.py"), "gate-off", "--port", str(PORTS["gate-off"])]
        spawn("gate-off", cmd + ["--upstream", origin], cwd=tmp / "gate-off")
    if "gate" in rows:
        (tmp / "gate").mkdir()
        gate = shutil.which("gate", path=os.path.dirname(sys.executable)) or "gate"
        env = {"GATE_SECRET_KEY": "bench-key-0123456789abcdef-0123456789"}
        spawn("gate", [gate, "serve", "--upstream", origin, "--port", str(PORTS["gate"])], env, cwd=tmp / "gate")
    if "baseline" in rows and baseline:  # gate as checked out in another directory, started the same way
        (tmp / "baseline").mkdir()
        env = {"GATE_SECRET_KEY": "bench-key-0123456789abcdef-0123456789", "PYTHONPATH": baseline}
        boot = (  # pip install -e's import hook would find this checkout's gate before PYTHONPATH does
            "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
            "import gate; assert gate.__file__.startswith(sys.argv[1]), gate.__file__; del sys.argv[1]\n"
            "from gate.cli import main; raise SystemExit(main())"
        )
        cmd = [sys.executable, "-c", boot, baseline, "serve"]
        spawn("baseline", cmd + ["--upstream", origin, "--port", str(PORTS["baseline"])], env, cwd=tmp / "baseline")
    for name, proc in procs.items():
        if name != "nginx":
            wait_up(f"http://127.0.0.1:{PORTS[name]}{PAGE}", proc, name)


def stop_all(procs: dict[str, subprocess.Popen]) -> None:
    for name, proc in procs.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- wrk ----------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def cpu_seconds(session: int) -> float:
    """CPU time (user + system) of every process in the session ``session`` (a server and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def wrk(url: str, connections: int, seconds: float, session: int | None = None) -> dict[str, float | bool]:
    threads = 1 if connections == 1 else 2
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    cpu = cpu_seconds(session) if session else 0.0
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if run.returncode != 0:  # wrk exits 1 when a connection is refused at its start: once more, then give up
        time.sleep(1)
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True)
    out = run.stdout
    cpu = cpu_seconds(session) - cpu if session else 0.0
    done = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    bad = bool(re.search(r"Non-2xx or 3xx responses|Socket errors", out))
    return {
        "rps": rps,
        "p50": float(p50.group(1)) * _UNITS[p50.group(2)],
        "p99": float(p99.group(1)) * _UNITS[p99.group(2)],
        "bad": bad,
        "cpu_ms": 1000 * cpu / max(done, 1),  # the server's CPU per request, whatever else loads the machine
    }


CELLS = [("page", PAGE, 1), ("page", PAGE, 32), ("image", IMAGE, 32)]


def measure(
    rows: list[str], seconds: float, rounds: int, procs: dict[str, subprocess.Popen]
) -> dict[str, dict[str, list[dict]]]:
    results: dict[str, dict[str, list[dict]]] = {r: {} for r in rows}
    for _ in range(rounds):
        for what, path, conns in CELLS:
            for row in rows:  # interleaved: each cell runs every row back to back
                url = f"http://127.0.0.1:{PORTS[row]}{path}"
                wrk(url, conns, 1)  # warm-up: connections, pools, caches
                session = procs[row].pid if row != "nginx" else None  # nginx proxy and origin share workers
                results[row].setdefault(f"{what}@{conns}", []).append(wrk(url, conns, seconds, session))
    return results


def med(samples: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def report(results: dict[str, dict[str, list[dict]]], sizes: tuple[int, int], args: argparse.Namespace) -> None:
    print(
        f"page {sizes[0]:,} B text/html, image {sizes[1]:,} B; wrk {args.duration:g} s per cell after 1 s warm-up, "
        f"{args.rounds} round(s), medians; load average {os.getloadavg()[0]:.2f} at the end"
    )
    head = (
        f"{'row':<30} {'page p50 @1':>12} {'page p99 @1':>12} {'page req/s @32':>15} {'image req/s @32':>16}"
        f" {'CPU ms/page @32':>16} {'CPU ms/image @32':>17}"
    )
    print(head)
    print("-" * len(head))
    for row, cells in results.items():
        bad = {k for k, v in cells.items() if any(s["bad"] for s in v)}

        def mark(k: str, bad: set[str] = bad) -> str:
            return "!" if k in bad else " "

        print(
            f"{ROWS[row]:<30} {med(cells['page@1'], 'p50'):9.3f} ms{mark('page@1')}"
            f"{med(cells['page@1'], 'p99'):9.3f} ms "
            f"{med(cells['page@32'], 'rps'):14,.0f}{mark('page@32')}"
            f"{med(cells['image@32'], 'rps'):16,.0f}{mark('image@32')}"
            f"{med(cells['page@32'], 'cpu_ms'):16.3f} {med(cells['image@32'], 'cpu_ms'):17.3f}"
        )
    if not {"gate", "bare8", "lolhtml"} <= results.keys():
        return
    g, b8, lol = results["gate"], results["bare8"], results["lolhtml"]
    best_bare_page = max(med(results[r]["page@32"], "rps") for r in ("bare8", "bare") if r in results)
    best_bare_image = max(med(results[r]["image@32"], "rps") for r in ("bare8", "bare") if r in results)
    goals = [
        (
            "page p50 @1: gate - bare (pool 8) <= 0.5 ms",
            med(g["page@1"], "p50") - med(b8["page@1"], "p50"),
            "ms",
            lambda v: v <= 0.5,
        ),
        (
            "page req/s @32: gate / best bare >= 0.7",
            med(g["page@32"], "rps") / best_bare_page,
            "x",
            lambda v: v >= 0.7,
        ),
        (
            "image req/s @32: gate / best bare >= 0.95",
            med(g["image@32"], "rps") / best_bare_image,
            "x",
            lambda v: v >= 0.95,
        ),
        (
            "page p50 @1: gate / bare+lol-html < 1",
            med(g["page@1"], "p50") / med(lol["page@1"], "p50"),
            "x",
            lambda v: v < 1,
        ),
        (
            "page req/s @32: gate / bare+lol-html > 1",
            med(g["page@32"], "rps") / med(lol["page@32"], "rps"),
            "x",
            lambda v: v > 1,
        ),
    ]
    for label, key in (("page", "page@32"), ("image", "image@32")):
        print(
            f"  CPU per {label} @32, gate / bare (pool 8): "
            f"{med(g[key], 'cpu_ms') / med(b8[key], 'cpu_ms'):.2f}x "
            f"(gate / bare + lol-html: {med(g[key], 'cpu_ms') / med(lol[key], 'cpu_ms'):.2f}x)"
        )
    print("\nGoals of issue 12 (gate = `gate serve`, undecided visitor)")
    for name, value, unit, ok in goals:
        print(f"  {name:<45} {value:+8.3f} {unit:<2}  {'met' if ok(value) else 'NOT MET'}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        ap = argparse.ArgumentParser()
        ap.add_argument("serve_bare")
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--upstream", required=True)
        ap.add_argument("--pool", type=int, default=8)
        ap.add_argument("--lolhtml", action="store_true")
        a = ap.parse_args()
        serve_bare(a.port, a.upstream, a.pool, a.lolhtml)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per cell (default 5)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    ap.add_argument("--json", help="save every sample here")
    ap.add_argument("--keep", action="store_true", help="leave the temporary directory (logs) in place")
    ap.add_argument("--baseline", help="a row for `gate serve` as checked out in this directory (its C scan built)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    rows = [r for r in args.rows.split(",") if r and (r != "baseline" or args.baseline)]
    if args.baseline:
        args.baseline = str(Path(args.baseline).resolve())
        ROWS["baseline"] = f"gate serve, {Path(args.baseline).name}"
        if "baseline" not in rows:
            rows.append("baseline")
    tmp = Path(tempfile.mkdtemp(prefix="gate-bench-proxy-"))
    sizes = write_site(tmp)
    procs: dict[str, subprocess.Popen] = {}
    try:
        start_all(tmp, rows, procs, args.baseline)
        print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
        results = measure(rows, args.duration, args.rounds, procs)
    finally:
        stop_all(procs)
        if args.keep:
            print(f"logs in {tmp}/logs")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(results, sizes, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
