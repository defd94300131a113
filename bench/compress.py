"""Compressing rewritten pages for visitors (gate/encoders.py): bytes on the wire and CPU per level, and
the time to first byte through `gate serve`, in one run.

Levels. Each page (``gate.demo.bench_page``: 100k UTF-8, 100k Shift_JIS, 1m UTF-8) is fed to a fresh
encoder in 16 KB chunks, each flushed as gate flushes them (sync flush: a visitor gets every chunk at
once), then closed; the output is decoded again and compared. Reported: the bytes out, the ratio to the
page, and the median ms of CPU per page over --repeat runs (process time, so other load on the machine
counts less), with the rewrite of the same page by gate (refused everything) beside it.

First byte. ``gate serve`` (access log, ledger on) in front of a Python origin that sends the 1m page in
16 KB chunks with 2 ms between them; a raw-socket client asks for it with ``Accept-Encoding: identity``
and with each coding, and times the first byte of the body and the last, --ttfb-runs each (medians).

    python bench/compress.py [--repeat 15] [--ttfb-runs 20]
"""

from __future__ import annotations

import argparse
import gzip
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import brotli

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gate import demo, encoders, urls, vendors  # noqa: E402
from gate.rewrite import PagePlan, PageRewriter  # noqa: E402

CHUNK = 16 * 1024
LEVELS = {
    "gzip": [1, 4, 6, 9],
    "br": [1, 3, 4, 5, 6, 8, 11],
    "zstd": [1, 3, 6, 9, 12, 19],
}


def encoder(coding: str, level: int) -> encoders.Encoder:
    if coding == "gzip":
        return encoders.GzipEncoder(level)
    if coding == "br":
        return encoders.BrotliEncoder(level)
    return encoders.ZstdEncoder(level)


def decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return brotli.decompress(data)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def encode(coding: str, level: int, page: bytes) -> tuple[bytes, float]:
    t = time.process_time()
    e = encoder(coding, level)
    out = [e.feed(page[i : i + CHUNK]) for i in range(0, len(page), CHUNK)]
    out.append(e.close())
    return b"".join(out), time.process_time() - t


def rewrite_ms(page: bytes, codec: str, repeat: int) -> float:
    registry = vendors.load()
    plan = PagePlan(registry, frozenset(), urls.parse("https://jobs.example.jp/jobs"))
    samples = []
    for _ in range(repeat + 2):
        t = time.process_time()
        rw = PageRewriter(plan, codec)
        for i in range(0, len(page), CHUNK):
            rw.feed(page[i : i + CHUNK])
        rw.close()
        samples.append(time.process_time() - t)
    return 1000 * statistics.median(samples[2:])


def levels(repeat: int) -> None:
    pages = {
        "100k utf-8": (demo.bench_page("100k"), "utf-8"),
        "100k sjis": (demo.bench_page("100k", "sjis"), "cp932"),
        "1m utf-8": (demo.bench_page("1m"), "utf-8"),
    }
    codings = [c for c in LEVELS if c != "zstd" or encoders.zstandard is not None]
    print(f"CPU ms per page: median of {repeat} runs (process time), 16 KB chunks each flushed")
    print(f"{'coding level':<14}" + "".join(f"{name:>30}" for name in pages))
    print(f"{'':<14}" + "".join(f"{'bytes':>12} {'ratio':>6} {'CPU ms':>9} " for _ in pages))
    print(f"{'(page)':<14}" + "".join(f"{len(p):>12,} {1:>6.3f} {'':>9} " for p, _ in pages.values()))
    print(
        f"{'gate rewrite':<14}"
        + "".join(f"{'':>12} {'':>6} {rewrite_ms(p, c, repeat):>9.3f} " for p, c in pages.values())
    )
    for coding in codings:
        for level in LEVELS[coding]:
            cells = []
            for page, _ in pages.values():
                out, _ = encode(coding, level, page)
                if decode(coding, out) != page:
                    raise SystemExit(f"{coding} {level}: decoded output differs from the page")
                cpu = statistics.median(encode(coding, level, page)[1] for _ in range(repeat))
                cells.append(f"{len(out):>12,} {len(out) / len(page):>6.3f} {1000 * cpu:>9.3f} ")
            print(f"{coding + ' ' + str(level):<14}" + "".join(cells))


# -- time to first byte through gate serve ----------------------------------------------------------
ORIGIN = """
import asyncio, sys
sys.path.insert(0, {root!r})
import uvicorn
from gate.demo import bench_page
PAGE = bench_page("1m")

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]}})
    for i in range(0, len(PAGE), 16384):
        await send({{"type": "http.response.body", "body": PAGE[i:i + 16384], "more_body": True}})
        await asyncio.sleep(0.002)
    await send({{"type": "http.response.body", "body": b""}})

uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def fetch(port: int, accept_encoding: str) -> tuple[float, float, int, bytes]:
    """(first body byte s, last byte s, bytes on the wire, Content-Encoding) for one GET."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    t = time.perf_counter()
    s.sendall(
        f"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: {accept_encoding}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    data, first = b"", None
    while True:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
        if first is None:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0 and len(data) > head_end + 4:
                first = time.perf_counter() - t
    last = time.perf_counter() - t
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    coding = next(
        (ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-encoding:")),
        b"identity",
    )
    return first or last, last, len(body), coding


def ttfb(runs: int) -> None:
    origin_port, gate_port = 9131, 9132
    tmp = Path(tempfile.mkdtemp(prefix="gate-bench-compress-"))
    procs = []
    try:
        script = tmp / "origin.py"
        script.write_text(ORIGIN.format(root=str(HERE.parent), port=origin_port))
        procs.append(subprocess.Popen([sys.executable, str(script)]))
        wait_port(origin_port, procs[-1])
        env = {**os.environ, "GATE_SECRET_KEY": "bench-key-0123456789abcdef-0123456789"}
        gate = str(Path(sys.executable).parent / "gate")
        cmd = [gate, "serve", "--upstream", f"http://127.0.0.1:{origin_port}", "--port", str(gate_port)]
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp, stderr=open(tmp / "gate.log", "wb")))
        wait_port(gate_port, procs[-1])
        asks = ["identity"] + [c for c in ("gzip", "br", "zstd") if c in encoders.PREFERENCE]
        results: dict[str, list[tuple[float, float, int, bytes]]] = {a: [] for a in asks}
        for a in asks:
            fetch(gate_port, a)  # warm-up
        for _ in range(runs):
            for a in asks:  # interleaved
                results[a].append(fetch(gate_port, a))
        print(f"\n1m page through `gate serve`, origin sends 16 KB chunks 2 ms apart; medians of {runs} runs")
        print(f"{'Accept-Encoding':<16} {'sent as':<9} {'body bytes':>11} {'first byte ms':>14} {'last byte ms':>13}")
        for a, rs in results.items():
            print(
                f"{a:<16} {rs[0][3].decode():<9} {rs[0][2]:>11,} {1000 * statistics.median(r[0] for r in rs):>14.2f}"
                f" {1000 * statistics.median(r[1] for r in rs):>13.2f}"
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--ttfb-runs", type=int, default=20)
    ap.add_argument("--skip-ttfb", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    levels(args.repeat)
    if not args.skip_ttfb:
        ttfb(args.ttfb_runs)


if __name__ == "__main__":
    main()
