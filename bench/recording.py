"""What recording costs: gate with the ledger on (SQLite store, the default 5 s flush, the beacon script
injected) against gate with ``store = "off"``, on the same pages, in the same run.

Both gates serve the embedded demo site (so each process does all of a page's work: origin, rewrite,
recording) and run in their own processes; the load comes from this process over loopback. The pages are
the demo's job pages and home page (about 16 KB each, the smallest pages, where a fixed cost per page weighs
most), alternately for an undecided visitor and an accept-all one. Rounds alternate on, off, on, off …, so
drift on a shared machine hits both alike. Loops are bounded; both servers are stopped by PID at the end.

    python bench/recording.py [--requests 600] [--concurrency 8] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

KEY = "bench-key-0123456789abcdef"
PAGES = ["/", "/jobs/dh-001", "/jobs/dh-002", "/jobs/dh-003", "/jobs/dh-004"]
PORTS = {"recording off": 9111, "recording on": 9112}


def serve(store: str, port: int) -> None:
    """In the child: gate in front of the demo, with ``store``."""
    import uvicorn

    from gate import settings
    from gate.app import create_app

    conf = settings.load({}, {"GATE_SECRET_KEY": KEY, "GATE_STORE": store})
    uvicorn.run(
        create_app(conf), host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="auto", http="auto"
    )


def start(store: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", store, "--port", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_gate/healthz", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gate did not start on {port}")


def accept_all_cookie(base: str) -> str:
    r = httpx.post(base + "/_gate/consent", json={"choice": "accept_all"}, headers={"Origin": base})
    r.raise_for_status()
    return r.cookies["gate_consent"]


async def throughput(base: str, n: int, concurrency: int, cookie: str) -> float:
    """Requests per second for ``n`` page requests over ``concurrency`` connections (half with consent)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    todo = list(range(n))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while todo:
                i = todo.pop()
                headers = {"cookie": f"gate_consent={cookie}"} if i % 2 else {}
                r = await client.get(PAGES[i % len(PAGES)], headers=headers)
                assert r.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    data = tempfile.mkdtemp(prefix="gate-bench-")
    stores = {"recording off": "off", "recording on": os.path.join(data, "gate.sqlite3")}
    procs = {}
    try:
        for name, store in stores.items():
            procs[name] = start(store, PORTS[name])
        bases = {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}
        cookies = {name: accept_all_cookie(base) for name, base in bases.items()}
        sizes = {name: len(httpx.get(base + PAGES[1]).content) for name, base in bases.items()}
        rps: dict[str, list[float]] = {name: [] for name in bases}
        for name, base in bases.items():  # warm-up
            asyncio.run(throughput(base, 100, args.concurrency, cookies[name]))
        print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
        for r in range(args.rounds):
            order = list(bases) if r % 2 == 0 else list(reversed(bases))
            for name in order:
                rps[name].append(asyncio.run(throughput(bases[name], args.requests, args.concurrency, cookies[name])))
            print(f"round {r + 1}: " + ", ".join(f"{n} {rps[n][-1]:.0f} req/s" for n in bases), flush=True)
        assert httpx.get(bases["recording on"] + "/_gate/healthz").status_code == 200  # still healthy
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=15)
    off, on = statistics.median(rps["recording off"]), statistics.median(rps["recording on"])
    ratios = sorted(b / a for a, b in zip(rps["recording off"], rps["recording on"], strict=True))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(
        f"pages: {', '.join(PAGES)}; job page {sizes['recording off']} bytes off, {sizes['recording on']} on "
        f"(+{sizes['recording on'] - sizes['recording off']}: the beacon script tag)"
    )
    print(
        f"{args.requests} requests x {args.rounds} rounds at {args.concurrency} concurrent connections; "
        "medians of rounds"
    )
    print(f"recording off: {off:.0f} req/s")
    print(f"recording on:  {on:.0f} req/s")
    print(
        f"on / off: {on / off:.3f} (cost {100 * (1 - on / off):+.1f} %); per-round ratios "
        f"{', '.join(f'{x:.3f}' for x in ratios)}"
    )


if __name__ == "__main__":
    main()
