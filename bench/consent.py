"""What a durable receipt costs per decision: POST /_gate/consent against a real `gate serve` (SQLite
store, default settings), one decision at a time over a kept-alive loopback connection, and the
journal's append + fsync alone, in this process.

Each decision's receipt is fsynced to the journal before the answer leaves (issue 14 point 7). Run it
on two checkouts to compare (``--code`` is put first on PYTHONPATH for the server):

    python bench/consent.py [--decisions 400] [--rounds 3] [--code /path/to/other/checkout]

Prints the median and p99 of the round medians, in milliseconds. Loops are bounded; the server is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def serve(code: Path, folder: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env |= {
        "PYTHONPATH": str(code),
        "GATE_SECRET_KEY": "bench-key-0123456789abcdef",
        "GATE_STORE": os.path.join(folder, "data", "gate.sqlite3"),
        "GATE_LOG_LEVEL": "warning",
        "GATE_TRUSTED_PROXIES": "127.0.0.1",
    }  # each decision from its own address: under the limit
    return subprocess.Popen(
        [sys.executable, "-m", "gate.cli", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def decisions(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=10, headers={"origin": url}) as client:
        for i in range(n):
            client.cookies.clear()
            started = time.perf_counter()
            r = client.post(
                "/_gate/consent",
                data={"choice": "reject_all" if i % 2 else "accept_all"},
                headers={"x-forwarded-for": f"198.51.100.{i % 250}"},
            )
            out.append(time.perf_counter() - started)
            assert r.status_code == 303, r.status_code
    return out


def journal_appends(n: int) -> list[float]:
    from gate.recording.journal import Journal
    from gate.recording.store import Receipt

    out = []
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as folder:
        journal = Journal(Path(folder))
        for i in range(n):
            r = Receipt(f"r{i}", "c", int(time.time()), "*", "v1", "accept_all", "a,b", "", "", "banner", "/")
            started = time.perf_counter()
            journal.append(r, lambda _: None)
            out.append(time.perf_counter() - started)
        journal.close()
    return out


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if q < 100 else max(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--port", type=int, default=9213)
    args = parser.parse_args()
    medians, p99s = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="gate-bench-") as folder:
            server = serve(args.code, folder, args.port)
            try:
                url = f"http://127.0.0.1:{args.port}"
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    try:
                        httpx.get(url + "/_gate/healthz", timeout=1)
                        break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                took = decisions(url, args.decisions)
            finally:
                server.terminate()
                server.wait(timeout=30)
        medians.append(statistics.median(took) * 1000)
        p99s.append(ms(took, 99))
    print(
        f"POST /_gate/consent ({args.code}): median {statistics.median(medians):.2f} ms, "
        f"p99 {statistics.median(p99s):.2f} ms ({args.rounds} rounds of {args.decisions})"
    )
    if (args.code / "gate" / "journal.py").exists() and args.code == ROOT:
        appends = journal_appends(args.decisions)
        print(
            f"journal append + fsync alone: median {statistics.median(appends) * 1000:.3f} ms, "
            f"p99 {ms(appends, 99):.3f} ms"
        )


if __name__ == "__main__":
    main()
