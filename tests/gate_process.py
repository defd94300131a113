"""A real `gate serve` in a subprocess (signals, exit codes, logs: what an in-thread server cannot show),
and a slow origin to put behind it.

- ``gate_process(*args, env=...)``: starts ``python -m gate.cli serve --port 0 ...`` in a directory of its
  own, waits until uvicorn says where it listens and every worker has started, yields a ``GateProcess``;
  always stopped (SIGKILL by PID if it outlives the test).
- ``slow_origin()``: an in-thread uvicorn serving ``/slow?n=N&delay=S``, an HTML page streamed in N
  chunks S seconds apart, ending with ``<p>the end</p></body></html>``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .conftest import serve

ROOT = Path(__file__).resolve().parent.parent
KEY = "shutdown-test-key-0123456789"
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class GateProcess:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []  # stderr, as it comes
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        try:
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
        except ValueError:  # closed by close(): a worker that outlived its parent still held the pipe
            pass

    def wait_listening(self, workers: int = 1, timeout: float = 30) -> str:
        """Until uvicorn listens and every worker has started: with --workers, the parent binds the
        socket but only a started worker accepts, so a request before that would be refused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = list(self.lines)
            m = next((m for line in lines if (m := _LISTENING.search(line))), None)
            if m and sum("Application startup complete." in line for line in lines) >= workers:
                self.url = f"http://127.0.0.1:{m.group(1)}"
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("gate did not start:\n" + "\n".join(self.lines))

    @property
    def stderr(self) -> str:
        self._reader.join(timeout=5)
        return "\n".join(self.lines)

    def close(self) -> None:
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()


@contextmanager
def gate_process(*args: str, env: dict[str, str] | None = None) -> Iterator[GateProcess]:
    """In a directory of its own, where its default SQLite store goes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="gate-test-") as cwd:
        process = subprocess.Popen(
            [sys.executable, "-m", "gate.cli", "serve", "--port", "0", *args],
            env=clean | (env or {}),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        gate = GateProcess(process)
        try:
            gate.wait_listening(int(args[args.index("--workers") + 1]) if "--workers" in args else 1)
            yield gate
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            gate.close()


async def _slow(request: Request) -> StreamingResponse:
    n, delay = int(request.query_params.get("n", "10")), float(request.query_params.get("delay", "0.2"))

    async def body():
        yield b"<!doctype html><html><head><title>slow</title></head><body>"
        for i in range(n):
            await asyncio.sleep(delay)
            yield f"<p>chunk {i}</p>".encode()
        yield b"<p>the end</p></body></html>"

    return StreamingResponse(body(), media_type="text/html; charset=utf-8")


@contextmanager
def slow_origin() -> Iterator[str]:
    with serve(Starlette(routes=[Route("/slow", _slow, methods=["GET", "HEAD"])])) as url:
        yield url
