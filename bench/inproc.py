"""gate's own time per page, in one process, against the bare pass-through (issue 12).

bench/proxy.py times whole servers through sockets, where wrk, nginx and the server share two cores
and a millisecond moves with everything else. This script keeps only the server's own work: gate's app
as `gate serve` builds it (access log on, JSON lines to a file; ledger and receipts on, SQLite in a
temporary directory; memory frozen as `gate serve` freezes it) and bench/proxy.py's bare pass-through
(pool 8) are driven by their ASGI calls, in the same process and event loop (uvloop), against the same
real nginx origin (the 100 KB page). The visitor's side is a function that collects the bytes: no
socket, no HTTP parse. Requests alternate between the apps (gate, bare, gate, …), so drift falls on both.

    python bench/inproc.py                     # 2,000 requests each: the medians, and gate - bare
    python bench/inproc.py --profile 20        # cProfile over gate's requests: the 20 largest by own time

Read the difference and the ratio; the milliseconds move with the machine. The origin is stopped by its
PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import logging
import logging.config
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import proxy  # noqa: E402  (bench/proxy.py: the origin and the bare pass-through)


def scope_for(path: str) -> dict[str, Any]:
    """The scope uvicorn hands an app for ``GET path`` from a browser-like client on loopback."""
    headers = [
        (b"host", f"127.0.0.1:{proxy.PORTS['gate']}".encode()),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"),
        (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        (b"accept-language", b"ja,en-US;q=0.9,en;q=0.8"),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", proxy.PORTS["gate"]),
        "state": {},
    }


async def one(app: Any, path: str) -> tuple[float, int]:
    """One request through ``app``: its wall time in seconds and the body bytes it sent."""
    sent = {"bytes": 0, "status": 0}
    received = False
    ended = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await ended.wait()  # the visitor stays until the response is over
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["bytes"] += len(message.get("body", b""))

    start = time.perf_counter()
    await app(scope_for(path), receive, send)
    seconds = time.perf_counter() - start
    ended.set()
    if sent["status"] != 200:
        raise SystemExit(f"{path}: status {sent['status']}")
    return seconds, sent["bytes"]


def gate_app(tmp: Path, origin: str) -> Any:
    """gate's app as `gate serve --upstream origin` builds it, its store and access log under ``tmp``."""
    from gate import cli, logs, settings
    from gate.app import create_app

    os.chdir(tmp)  # the SQLite store's default path is relative
    conf = settings.load({"upstream": origin}, {"GATE_SECRET_KEY": "bench-key-0123456789abcdef-0123456789"})
    access = open(tmp / "access.log", "w")  # open for the whole run
    logging.config.dictConfig(logs.config(conf.log_level, stderr=access))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(access)
    app = create_app(conf)
    cli.settle_memory()
    return app


@contextlib.contextmanager
def patched(settings: list[tuple[object, str, object]]) -> Iterator[None]:
    """Module attributes set to other values for the time of the block, then put back."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in settings]
    for owner, name, value in settings:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def variants() -> dict[str, list[tuple[object, str, object]]]:
    """A/B knobs: gate with these module attributes set otherwise, as a row of its own (``--variant``),
    its app built and every request of it run under them."""
    import httpcore

    from gate import decoders, later, netio, pool

    return {
        "anyio-backend": [(pool, "PLAIN_BACKEND", httpcore.AnyIOBackend())],
        "identity-16k": [(decoders, "IDENTITY_PIECE", decoders.PIECE)],
        "access-at-once": [(later, "MAX_HELD", 1)],  # every access line written as its response ends
        "access-batched": [(netio, "HELD_WHILE_WAITING", False)],  # access lines every 50 ms or 64 lines
    }


async def run(args: argparse.Namespace, tmp: Path) -> None:
    origin = f"http://127.0.0.1:{proxy.PORTS['origin']}"
    apps: dict[str, Any] = {"gate": gate_app(tmp, origin), "bare": proxy.bare_app(origin, 8, False)}
    knobs: dict[str, list[tuple[object, str, object]]] = {"gate": [], "bare": []}
    for name in args.variant:
        knobs[name] = variants()[name]
        with patched(knobs[name]):
            apps[name] = gate_app(tmp, origin)
    times: dict[str, list[float]] = {name: [] for name in apps}
    sizes: dict[str, int] = {}
    profile = cProfile.Profile() if args.profile else None
    async with contextlib.AsyncExitStack() as stack:
        for name, app in apps.items():
            with patched(knobs[name]):
                await stack.enter_async_context(app.router.lifespan_context(app))
        for _ in range(args.warmup):
            for name, app in apps.items():
                with patched(knobs[name]):
                    await one(app, proxy.PAGE)
        gc.collect()
        for _ in range(args.requests):
            for name, app in apps.items():
                with patched(knobs[name]):
                    if profile is not None and name == "gate":
                        profile.enable()
                    seconds, size = await one(app, proxy.PAGE)
                    if profile is not None and name == "gate":
                        profile.disable()
                times[name].append(seconds)
                sizes[name] = size
    print(f"{args.requests:,} requests each, alternated; load average {os.getloadavg()[0]:.2f} at the end")
    medians = {name: 1000 * statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        label = {"gate": "gate (as gate serve)", "bare": "bare pass-through, pool 8"}.get(name, f"gate, {name}")
        p90 = 1000 * statistics.quantiles(t, n=10)[-1]
        print(f"  {label:<28} median {medians[name]:.3f} ms  p90 {p90:.3f} ms  ({sizes[name]:,} B)")
    b = medians["bare"]
    for name, m in medians.items():
        if name != "bare":
            print(f"  {name} - bare {m - b:+.3f} ms, {name} / bare {m / b:.3f}x")
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumtime").print_stats(args.profile)
        print(out.getvalue())
        for name in args.callees:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumtime").print_callees(name)
            print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile gate; print the N largest")
    parser.add_argument("--variant", nargs="*", default=[], choices=sorted(variants()), help="A/B rows")
    parser.add_argument("--callees", nargs="*", default=[], help="with --profile: what these functions called")
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory(prefix="gate-bench-inproc-") as name:
        tmp = Path(name)
        proxy.write_site(tmp)
        logs = tmp / "logs"
        logs.mkdir()
        with open(logs / "nginx.log", "wb") as err:
            nginx = subprocess.Popen(
                [proxy.nginx_binary(), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        try:
            proxy.wait_up(f"http://127.0.0.1:{proxy.PORTS['origin']}{proxy.PAGE}", nginx, "nginx")
            uvloop.run(run(args, tmp))
        finally:
            proxy.stop_all({"nginx": nginx})
            os.chdir(ROOT)


if __name__ == "__main__":
    main()
