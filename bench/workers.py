"""Throughput of `gate serve --workers 1` against `--workers 2`, on the same demo page in the same run.

    python bench/workers.py [--path /] [--rounds 3] [--seconds 10] [--connections 32] [--requests 3000]

Each round starts a fresh `gate serve` (demo mode, so the origin is the embedded demo site: its page
building is part of the cost), warms it up, then loads it from a second process: wrk when it is
installed (`apt-get install wrk`; --seconds of load, one thread), else a small asyncio httpx client
(--requests in all over --connections connections). Rounds alternate 1, 2, 1, 2, ... so drift hits both
alike; the median of each is reported with the ratio. Loopback only; every process is stopped by PID.
The visitor is undecided, so every response is the gated page with the banner. The load average is
printed with each round: on a machine shared with other work the numbers are only as good as it is idle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def start_gate(workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`gate serve --workers N` in the log's directory (its SQLite store goes there, not in the tree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env["PYTHONPATH"] = str(ROOT)
    env["GATE_LOG_LEVEL"] = "info"  # the access line is part of what a request costs in production
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gate.cli", "serve", "--port", "0", "--workers", str(workers)],
            cwd=log.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if m := _LISTENING.search(log.read_text(encoding="utf-8", errors="replace")):
            url = f"http://127.0.0.1:{m.group(1)}"
            break
        if process.poll() is not None:
            raise RuntimeError(f"gate exited:\n{log.read_text()}")
        time.sleep(0.1)
    else:
        stop(process)
        raise RuntimeError("gate did not start in 60 s")
    # Every worker must be up: with --workers 2 the second may start seconds after the first.
    while (
        time.monotonic() < deadline and log.read_text(errors="replace").count("Application startup complete") < workers
    ):
        time.sleep(0.1)
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def _client_load(url: str, requests: int, connections: int) -> tuple[float, int]:
    """(requests per second, errors) for ``requests`` GETs over ``connections`` connections."""
    remaining = requests
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                r = await client.get(url)
                if r.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return requests / (time.perf_counter() - started), errors


def load(url: str, args: argparse.Namespace) -> tuple[float, str]:
    """Requests per second from a second process, and the tool's name."""
    wrk = shutil.which("wrk")
    if wrk and not args.python_client:
        done = subprocess.run(
            [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "10s", url],
            capture_output=True,
            text=True,
            timeout=args.seconds + 60,
            check=False,
        )
        m = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
        if done.returncode != 0 or m is None or re.search(r"Non-2xx|Socket errors", done.stdout):
            raise RuntimeError(f"wrk failed or saw errors:\n{done.stdout}{done.stderr}")
        return float(m.group(1)), "wrk"
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client",
            url,
            "--requests",
            str(args.requests),
            "--connections",
            str(args.connections),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rate, errors = done.stdout.split()
    if int(errors):
        raise RuntimeError(f"{errors} requests failed")
    return float(rate), "httpx client"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="wrk: seconds of load per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="httpx client: requests per round")
    parser.add_argument("--python-client", action="store_true", help="use the httpx client even if wrk is there")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)  # the load process itself
    args = parser.parse_args()
    if args.client:
        rate, errors = asyncio.run(_client_load(args.client, args.requests, args.connections))
        print(f"{rate:.1f} {errors}")
        return 0

    results: dict[int, list[float]] = {1: [], 2: []}
    tool = ""
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        for round_ in range(args.rounds):
            for workers in (1, 2):
                process, url = start_gate(workers, Path(tmp) / f"gate-{round_}-{workers}.log")
                try:
                    page = url + args.path
                    with httpx.Client(timeout=30) as client:  # warm-up: imports, caches, every worker
                        for _ in range(100):
                            client.get(page).raise_for_status()
                    rate, tool = load(page, args)
                finally:
                    stop(process)
                results[workers].append(rate)
                load_avg = os.getloadavg()[0]
                print(
                    f"round {round_ + 1}: --workers {workers}: {rate:8.1f} req/s  (load average {load_avg:.2f})",
                    flush=True,
                )
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(
        f"\n{os.cpu_count()} CPUs, GET {args.path} (demo page, undecided visitor), {args.connections} connections, "
        f"load by {tool}"
    )
    print(f"--workers 1: median {one:.1f} req/s  ({', '.join(f'{r:.0f}' for r in results[1])})")
    print(f"--workers 2: median {two:.1f} req/s  ({', '.join(f'{r:.0f}' for r in results[2])})")
    print(f"ratio 2/1: {two / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
