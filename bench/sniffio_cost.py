"""Why gate depends on sniffio: httpcore retries `import sniffio` on every call of
current_async_library(), several times per request, and a failed import walks sys.path each time.

    python bench/sniffio_cost.py

Runs the same measurement twice in child processes: with the environment as installed, and with
sniffio hidden (a copy of sys.path whose site-packages lacks it). Prints the cost of one
current_async_library() call, how often httpcore calls it per request, and the requests per second of
one pooled httpx.AsyncClient fetching a 100 KB page from a local origin.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

BODY = b"x" * 100_000
REQUESTS, CONCURRENCY = 4000, 8


async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(head + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        writer.close()  # the client closed its pooled connection


async def measure() -> None:
    import httpcore._backends.auto as auto
    import httpcore._synchronization as sync
    import httpx

    real, calls = sync.current_async_library, [0]
    start = time.perf_counter()
    for _ in range(20_000):
        real()
    per_call = (time.perf_counter() - start) / 20_000

    def counting() -> str:
        calls[0] += 1
        return real()

    sync.current_async_library = auto.current_async_library = counting
    server = await asyncio.start_server(origin, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:

        async def worker(n: int) -> None:
            for _ in range(n):
                assert len((await client.get(url)).content) == len(BODY)

        await worker(100)  # warm up
        calls[0], start = 0, time.perf_counter()
        await asyncio.gather(*(worker(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    server.close()
    try:
        import sniffio  # noqa: F401

        label = "with sniffio   "
    except ImportError:
        label = "without sniffio"
    print(
        f"{label}  {per_call * 1e6:5.1f} us per call, {calls[0] / REQUESTS:4.1f} calls per request, "
        f"{REQUESTS / elapsed:6.0f} requests/s (100 KB, concurrency {CONCURRENCY})"
    )


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        asyncio.run(measure())
        return
    site = Path(sysconfig.get_paths()["purelib"])
    with tempfile.TemporaryDirectory() as hidden:
        for entry in site.iterdir():
            if not entry.name.startswith("sniffio"):
                (Path(hidden) / entry.name).symlink_to(entry)
        paths = [p for p in sys.path if p and Path(p).resolve() != site.resolve()] + [hidden]
        for _ in range(3):
            subprocess.run([sys.executable, __file__, "--child"], check=True)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
            subprocess.run([sys.executable, "-S", __file__, "--child"], check=True, env=env)


if __name__ == "__main__":
    main()
