"""Content decoding, measured three ways (issue 10 defect 1, issue 14 point 3):

  delivered  brotli pages of 100 KB, 1 MB and 5 MB through gate (real uvicorn origin and gate on
             127.0.0.1, origin sending 64 KiB pieces): page bytes the visitor receives, and whether the
             origin's last line is among them.
  decode     decoder throughput alone: a 5 MB page as gzip -6 and brotli q5, fed in 64 KiB pieces;
             MB/s of decoded output (MB = 10^6 bytes) per CPU second (process_time: the machine is
             shared), median of N runs, one process.
  bomb       peak RSS of a gate process serving one unlabelled brotli bomb (no Content-Type; about
             2.7 GB of zeros in about 8 KB), in a child process capped at 4 GiB of address space, and
             what a labelled bomb (text/html) delivers in at most 15 s.

    python bench/decoders.py [delivered|decode|bomb ...] [--runs 7]

Loops are bounded in count and time; every server started here is stopped here.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import zlib

import brotli

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

PIECE = 64 * 1024
BOMB_PATH = "/tmp/gate-bench-brotli-bomb.br"
BOMB_BYTES = 2_700_000_000


def decoder_for(coding: str):
    try:
        from gate.decoders import decoder_for as new
    except ImportError:  # the code before gate/decoders.py existed
        from gate.upstream import decoder_for as new
    return new(coding)


def page(size: int) -> bytes:
    """An HTML page of ``size`` bytes made of varied job cards, its last line marked."""
    head = b"<!doctype html><html><head><title>jobs</title></head><body>\n"
    tail = b"<p id=last>the origin's last line</p></body></html>\n"
    cards, i = [], 0
    total = len(head) + len(tail)
    while total < size:
        card = (
            f"<div class=card><h2>Job {i}: dental hygienist in ward {i % 23}</h2>"
            f"<p>Salary {200_000 + i * 37 % 90_000} yen, {i % 5 + 1} days a week</p></div>\n"
        ).encode()
        cards.append(card)
        total += len(card)
        i += 1
    body = head + b"".join(cards)
    return (body[: size - len(tail)] + tail) if size > len(head) + len(tail) else body


# -- delivered ----------------------------------------------------------------------------------
def _serve(app):
    from tests.conftest import serve

    return serve(app)


def delivered() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    from gate.app import create_app
    from tests.conftest import gate_settings

    pages = {n: page(n) for n in (100 * 1024, 1024 * 1024, 5 * 1024 * 1024)}
    wires = {n: brotli.compress(p, quality=5) for n, p in pages.items()}

    async def br(request):
        wire = wires[int(request.query_params["n"])]

        async def body():
            for i in range(0, len(wire), PIECE):
                yield wire[i : i + PIECE]

        return StreamingResponse(body(), media_type="text/html", headers={"content-encoding": "br"})

    origin = Starlette(routes=[Route("/br", br)])
    with _serve(origin) as origin_url, _serve(create_app(gate_settings(origin_url))) as gate_url:
        for n, p in pages.items():
            try:
                r = httpx.get(f"{gate_url}/br?n={n}", timeout=60)
                got, status, note = r.content, r.status_code, ""
            except httpx.HTTPError as e:
                got, status, note = b"", "-", f" ({type(e).__name__}: the response was cut)"
            print(
                f"  {n:>9,} B brotli page: status {status}, {len(got):>9,} B delivered "
                f"(origin page {len(p):,} B; last line delivered: {b'the origin' in got[-4096:]}){note}"
            )


# -- decode -------------------------------------------------------------------------------------
def decode(runs: int) -> None:
    text = page(5 * 1024 * 1024)
    gz = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    wires = {"gzip": gz.compress(text) + gz.flush(), "br": brotli.compress(text, quality=5)}
    for coding, wire in wires.items():
        times, out = [], 0
        for _ in range(runs):
            d = decoder_for(coding)
            started = time.process_time()
            out = 0
            for i in range(0, len(wire), PIECE):
                out += sum(len(p) for p in d.pieces(wire[i : i + PIECE]))
            out += sum(len(p) for p in d.end_pieces())
            times.append(time.process_time() - started)
        med = statistics.median(times)
        print(
            f"  {coding:>4}: {len(text) / med / 1e6:7.1f} MB/s of page (median of {runs}, {med * 1000:.1f} ms); "
            f"decoded {out:,} of {len(text):,} B"
        )


# -- bomb ---------------------------------------------------------------------------------------
def bomb_bytes() -> bytes:
    if not os.path.exists(BOMB_PATH):
        c = brotli.Compressor(quality=9)
        block = bytes(64 * 1024 * 1024)
        parts = [c.process(block) for _ in range(BOMB_BYTES // len(block))]
        parts.append(c.finish())
        with open(BOMB_PATH, "wb") as f:
            f.write(b"".join(parts))
    with open(BOMB_PATH, "rb") as f:
        return f.read()


def _raw_get(port: int, path: str, seconds: float) -> tuple[bytes, int]:
    """The status line and the number of bytes received in at most ``seconds``."""
    s = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    deadline, got, first = time.monotonic() + seconds, 0, b""
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            data = s.recv(1 << 20)
            if not data:
                break
            first = first or data[:40]
            got += len(data)
    except (TimeoutError, OSError):
        pass
    finally:
        s.close()
    return first.split(b"\r\n")[0], got


def bomb_child(labelled: bool) -> None:
    """In a child: origin and gate in this process, one bomb requested, peak RSS printed."""
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from gate.app import create_app
    from tests.conftest import gate_settings

    wire = bomb_bytes()

    async def bomb(request):
        headers = {"content-encoding": "br"}
        return Response(wire, media_type="text/html" if labelled else None, headers=headers)

    origin = Starlette(routes=[Route("/bomb", bomb)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with _serve(origin) as origin_url, _serve(create_app(gate_settings(origin_url))) as gate_url:
        port = int(gate_url.rsplit(":", 1)[1])
        started = time.monotonic()
        status, got = _raw_get(port, "/bomb", 15.0)
        took = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kind = "labelled text/html" if labelled else "unlabelled"
    print(
        f"  {kind} bomb ({len(wire):,} B of brotli -> {BOMB_BYTES:,} B): {status.decode(errors='replace')!r}, "
        f"{got:,} B received in {took:.1f} s; peak RSS {peak:.0f} MiB (at rest {before:.0f} MiB)"
    )


def bomb() -> None:
    bomb_bytes()
    for labelled in (False, True):
        proc = subprocess.run(
            [sys.executable, __file__, "_bomb_child", str(int(labelled))],
            check=False,
            timeout=120,
            capture_output=True,
            text=True,
        )
        print(proc.stdout.rstrip() or f"  child failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_bomb_child":
        bomb_child(sys.argv[2] == "1")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="*", default=["delivered", "decode", "bomb"])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for what in args.what:
        print(what)
        {"delivered": delivered, "decode": lambda: decode(args.runs), "bomb": bomb}[what]()


if __name__ == "__main__":
    main()
