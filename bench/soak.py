"""A bounded soak: ordinary visitors load pages, assets, consents and beacons on the demo site while,
beside them, hostile visitors hammer a second site whose origin misbehaves (stalls, trickles, sends a
Content-Length shorter than its body, serves 16 MB to visitors who never read), and others send
headers that never end. Reports errors, latency percentiles and gate's memory and open files before
and after.

    python bench/soak.py                          # 30 s or 3,000 ordinary requests, whichever first
    python bench/soak.py --seconds 120 --requests 20000 --visitors 32 --hostile 24

An error is an ordinary visitor's request that failed: a transport error, or a status other than the
expected one (a 429 from the beacon limit is counted apart, not as an error). It runs `gate serve` in a
subprocess and stops it by PID; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile import LOGS, gate, rss_mb  # bench/hostile.py; it puts the repository on sys.path

from tests.hostile import get, path_of, raw_origin, sleep_unless, visitor

FAULTY = "faulty.test"
BIG = 16 * 1024 * 1024
# (kind, method, path, expected status); weights below
ORDINARY = [
    ("page", "GET", "/", 200),
    ("page", "GET", "/jobs/{job}", 200),
    ("asset", "GET", "/static/logo.png", 200),
    ("asset", "GET", "/logo.svg", 200),
    ("consent", "POST", "/_gate/consent", 200),
    ("beacon", "POST", "/_gate/beacon", 204),
]
WEIGHTS = [3, 3, 2, 2, 1, 2]
JOBS = ["dh-001", "dh-002", "dh-003", "dh-004", "dds-001", "dds-002"]  # the demo site's


def faulty_answer(stopped: threading.Event):
    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        path = path_of(head)
        if path.startswith("/stall"):
            sleep_unless(stopped, 60)
            return False
        if path.startswith("/trickle"):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n<p>")
            for _ in range(600):
                if not sleep_unless(stopped, 0.1):
                    return False
                sock.sendall(b"x")
            return False
        if path.startswith("/short"):  # a Content-Length shorter than the body
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabcdef"
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
            )
            return True
        if path.startswith("/big"):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % BIG
            )
            for _ in range(BIG // 65536):
                sock.sendall(b"x" * 65536)
            return True
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
        return True

    return answer


def hostile_loop(url: str, stop: threading.Event, seconds: float, counts: Counter, size: int) -> None:
    """Slow readers, stalls, trickles, short bodies and unfinished headers: ``size`` of them a second."""
    deadline = time.monotonic() + seconds
    wave = 0
    while not stop.is_set() and time.monotonic() < deadline:
        held = []
        for i in range(size):
            kind = ("big", "stall", "trickle", "short", "half")[(wave + i) % 5]
            try:
                sock = visitor(url, f"127.0.2.{2 + (wave * size + i) % 250}", 2)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                if kind == "half":
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: " + FAULTY.encode() + b"\r\nX-Slow: ")
                else:
                    sock.sendall(get(f"/{kind}/{wave}", host=FAULTY))
                held.append(sock)
                counts[kind] += 1
            except OSError:
                counts["hostile connect failed"] += 1
        stop.wait(1.0)
        for sock in held[::2]:  # half leave now, half stay until the end of the next wave (or are dropped)
            sock.close()
        wave += 1
        for sock in held[1::2]:
            threading.Timer(1.0, sock.close).start()


async def ordinary(url: str, worker: int, until: float, budget: list[int], results: list, rng: random.Random) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.1.{2 + worker}")
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=10.0) as client:
        while time.monotonic() < until and budget[0] > 0:
            budget[0] -= 1
            kind, method, path, expected = rng.choices(ORDINARY, WEIGHTS)[0]
            path = path.format(job=rng.choice(JOBS))
            kwargs: dict = {}
            if kind == "consent":
                kwargs = {"json": {"choice": rng.choice(["accept_all", "reject_all"])}, "headers": {"origin": url}}
            elif kind == "beacon":
                kwargs = {
                    "content": json.dumps({"v": 1, "page": "/", "hosts": ["connect.facebook.net"]}),
                    "headers": {"origin": url, "content-type": "text/plain"},
                }
            started = time.perf_counter()
            try:
                r = await client.request(method, path, **kwargs)
                outcome = r.status_code
            except httpx.HTTPError as e:
                outcome = type(e).__name__
            results.append((kind, outcome, expected, time.perf_counter() - started))


@contextmanager
def demo_origin() -> Iterator[str]:
    """The demo job site on its own uvicorn (bench/serve.py origin), a real origin over loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("serve.py")), "origin", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the demo origin did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--requests", type=int, default=3000, help="ordinary requests, at most")
    ap.add_argument("--visitors", type=int, default=16, help="ordinary visitors, each from its own address")
    ap.add_argument("--hostile", type=int, default=8, help="hostile connections opened each second")
    args = ap.parse_args()
    stopped = threading.Event()
    with demo_origin() as ordinary_url, raw_origin(faulty_answer(stopped), stopped) as faulty:
        # Both sites share gate's one upstream pool, as they would in production.
        toml = f'[[site]]\nupstream = "{ordinary_url}"\n\n[[site]]\nhost = "{FAULTY}"\nupstream = "{faulty.url}"\n'
        with gate(None, toml=toml, store="soak.sqlite3") as (url, pid):
            for _ in range(20):  # warm up: every page type once
                httpx.get(url + "/", timeout=10)
            rss_before, files_before = rss_mb(pid)[0], open_files(pid)
            counts: Counter = Counter()
            stop = threading.Event()
            beside = threading.Thread(
                target=hostile_loop, args=(url, stop, args.seconds, counts, args.hostile), daemon=True
            )
            beside.start()
            results: list = []
            started = time.monotonic()

            async def load() -> None:
                until, budget = started + args.seconds, [args.requests]
                await asyncio.gather(
                    *(ordinary(url, i, until, budget, results, random.Random(i)) for i in range(args.visitors))
                )

            asyncio.run(load())
            elapsed = time.monotonic() - started
            stop.set()
            beside.join(timeout=5)
            time.sleep(1.0)
            rss_after, peak = rss_mb(pid)
            files_after = open_files(pid)
        stopped.set()
    report(results, counts, elapsed, (rss_before, rss_after, peak), (files_before, files_after))
    ordinary_failures = [
        ln.strip()
        for ln in LOGS[pid]
        if "failed for" in ln
        and FAULTY not in ln
        and "/stall" not in ln
        and "/trickle" not in ln
        and "/big" not in ln
        and "/short" not in ln
    ]
    print(f"gate's log: {len(LOGS[pid])} lines; upstream failures on the ordinary site: {len(ordinary_failures)}")
    for line in ordinary_failures[:5]:
        print("  " + line[:200])


def report(results: list, hostile: Counter, elapsed: float, rss: tuple, files: tuple) -> None:
    by_kind: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter = Counter()
    errors = limited = 0
    for kind, outcome, expected, seconds in results:
        by_kind[kind].append(seconds)
        outcomes[(kind, outcome)] += 1
        if outcome == 429 and kind == "beacon":
            limited += 1
        elif outcome != expected:
            errors += 1
    every = sorted(s for kind in by_kind.values() for s in kind)
    print(
        f"ordinary requests: {len(results)} in {elapsed:.1f} s ({len(results) / elapsed:.0f}/s); "
        f"errors: {errors}; beacons limited (429): {limited}"
    )
    for kind, seconds in sorted(by_kind.items()):
        seconds.sort()
        print(
            f"  {kind:8} n={len(seconds):5}  p50 {statistics.median(seconds) * 1000:6.1f} ms  "
            f"p99 {seconds[int(len(seconds) * 0.99) - 1] * 1000:7.1f} ms  max {seconds[-1] * 1000:7.1f} ms"
        )
    if every:
        print(f"  all      n={len(every):5}  p99 {every[int(len(every) * 0.99) - 1] * 1000:.1f} ms")
    print("  outcomes: " + ", ".join(f"{k}:{o}={n}" for (k, o), n in sorted(outcomes.items(), key=str)))
    print("hostile beside them: " + ", ".join(f"{k}={n}" for k, n in sorted(hostile.items())))
    print(
        f"gate RSS: {rss[0]:.0f} MB before, {rss[1]:.0f} MB after (peak {rss[2]:.0f} MB); "
        f"open files: {files[0]} before, {files[1]} after"
    )


if __name__ == "__main__":
    main()
