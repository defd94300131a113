"""Added latency and throughput of gate on the same 100 KB job page, in one run:

  origin direct | gate, gating off (same proxy path, no rewrite) | gate, undecided visitor (banner,
  everything stripped) | gate, accept-all visitor (banner gone, everything kept).

Every server runs in its own process (bench/serve.py); the load comes from this process over loopback.
Latency: sequential requests (p50/p99). Throughput: a fixed number of requests over C concurrent
connections. Both loops are bounded. Medians of R rounds; these machines are shared and noisy.

    python bench/proxy.py [--requests 400] [--concurrency 16] [--rounds 3] [--page /bench/100k]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = {"origin": 9101, "gate-off": 9102, "gate": 9103}


def start(kind: str, port: int, upstream: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, os.path.join(HERE, "serve.py"), kind, "--port", str(port)]
    if upstream:
        cmd += ["--upstream", upstream]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(
                f"http://127.0.0.1:{port}/_gate/healthz" if kind != "origin" else f"http://127.0.0.1:{port}/", timeout=1
            )
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{kind} did not start on {port}")


async def latency(url: str, n: int, cookies: dict[str, str]) -> list[float]:
    out = []
    async with httpx.AsyncClient(cookies=cookies, timeout=30) as client:
        for _ in range(n):
            t = time.perf_counter()
            r = await client.get(url)
            await r.aread()
            out.append(time.perf_counter() - t)
            assert r.status_code == 200
    return out


async def throughput(url: str, n: int, concurrency: int, cookies: dict[str, str]) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue = list(range(n))
    async with httpx.AsyncClient(cookies=cookies, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while queue:
                queue.pop()
                r = await client.get(url)
                assert r.status_code == 200

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t)


def accept_all_cookie(base: str) -> dict[str, str]:
    r = httpx.post(base + "/_gate/consent", json={"choice": "accept_all"}, headers={"Origin": base})
    r.raise_for_status()
    return {"gate_consent": r.cookies["gate_consent"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--page", default="/bench/100k")
    args = ap.parse_args()
    origin = f"http://127.0.0.1:{PORTS['origin']}"
    procs = [start("origin", PORTS["origin"])]
    try:
        procs.append(start("gate-off", PORTS["gate-off"], origin))
        procs.append(start("gate", PORTS["gate"], origin))
        gate = f"http://127.0.0.1:{PORTS['gate']}"
        variants = {
            "origin direct": (origin, {}),
            "gate, gating off": (f"http://127.0.0.1:{PORTS['gate-off']}", {}),
            "gate, undecided": (gate, {}),
            "gate, accept-all": (gate, accept_all_cookie(gate)),
        }
        size = len(httpx.get(origin + args.page).content)
        results: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": [], "rps": []} for k in variants}
        for _ in range(args.rounds):
            for name, (base, cookies) in variants.items():  # interleaved, so drift hits every variant
                asyncio.run(latency(base + args.page, 20, cookies))  # warm-up
                lat = sorted(asyncio.run(latency(base + args.page, args.requests, cookies)))
                results[name]["p50"].append(lat[len(lat) // 2] * 1000)
                results[name]["p99"].append(lat[int(len(lat) * 0.99) - 1] * 1000)
                results[name]["rps"].append(
                    asyncio.run(throughput(base + args.page, args.requests, args.concurrency, cookies))
                )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
    base_p50 = statistics.median(results["origin direct"]["p50"])
    base_rps = statistics.median(results["origin direct"]["rps"])
    print(
        f"page {args.page}: {size} bytes; {args.requests} requests x {args.rounds} rounds; "
        f"throughput at {args.concurrency} concurrent connections; medians of rounds"
    )
    print(f"{'variant':<20} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'req/s':>8} {'vs direct':>10}")
    for name, r in results.items():
        p50, p99, rps = (statistics.median(r[k]) for k in ("p50", "p99", "rps"))
        print(f"{name:<20} {p50:8.2f} {p99:8.2f} {p50 - base_p50:+10.2f} {rps:8.0f} {rps / base_rps:10.2f}")


if __name__ == "__main__":
    main()
