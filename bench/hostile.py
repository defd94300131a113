"""The figures of issue 14, points 1, 2, 8 and 10, measured against a real `gate serve` subprocess with
its default settings, in front of a raw-socket origin that misbehaves on purpose (tests/hostile.py).

    python bench/hostile.py            # about a minute; prints one line per figure

The same command runs on older code (it only uses `gate serve --upstream` and a gate.toml key that has
long existed), so before and after compare like with like. Everything it starts is stopped by PID;
every wait is bounded.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile import get, path_of, raw_origin, read_response, sleep_unless, visitor  # noqa: E402

KEY = "bench-hostile-key-0123456789"
BIG = 16 * 1024 * 1024
LOGS: dict[int, list[str]] = {}  # pid -> gate's stderr lines, while it runs and after
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@contextmanager
def gate(
    upstream: str | None, toml: str = "", nofile: int | None = None, store: str = "off"
) -> Iterator[tuple[str, int]]:
    """`gate serve` in a subprocess; yields (url, pid). ``nofile``: its soft open-files limit at start."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "gate.cli", "serve", "--port", "0"]
        args += ["--upstream", upstream] if upstream else []
        if toml:
            (Path(tmp) / "gate.toml").write_text(toml)
            args += ["--config", str(Path(tmp) / "gate.toml")]
        env = {
            **os.environ,
            "GATE_SECRET_KEY": KEY,
            "GATE_STORE": store,
            "GATE_LOG_LEVEL": "info",
            "PYTHONPATH": str(ROOT),
        }

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        proc = subprocess.Popen(
            args, cwd=tmp, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, preexec_fn=limit
        )
        lines = LOGS[proc.pid] = []
        threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True).start()  # drains the pipe
        try:
            deadline, port = time.monotonic() + 30, None
            while port is None:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("gate did not start:\n" + "".join(lines))
                port = next((int(m.group(1)) for line in list(lines) if (m := _LISTENING.search(line))), None)
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}", proc.pid
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def origin() -> Iterator[str]:
    """/big…: 16 MB; /stall…: no answer; /first: Content-Length 5 but 'hello' plus a whole second response;
    /trickle: 1 byte a second; /stalled-page: HTML headers, then nothing; else: a short 200."""
    stopped = threading.Event()

    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        path = path_of(head)
        if path.startswith("/stall"):
            if path == "/stalled-page":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n")
            sleep_unless(stopped, 120)
            return False
        if path.startswith("/big"):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % BIG
            )
            for _ in range(BIG // 65536):
                sock.sendall(b"x" * 65536)
            return True
        if path == "/first":
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nSMUGGLED"
            )
            return True
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
        return True

    with raw_origin(answer, stopped) as served:
        yield served.url


def timed(url: str, request: bytes, source: str = "127.0.0.1", timeout: float = 15.0) -> str:
    started = time.monotonic()
    try:
        with visitor(url, source, timeout) as sock:
            sock.sendall(request)
            answer = read_response(sock)
    except OSError as e:
        return f"{type(e).__name__} after {time.monotonic() - started:.1f} s"
    status = answer[0] if answer else "no answer"
    return f"{status} after {time.monotonic() - started:.2f} s"


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def holders(url: str, requests: list[tuple[str, bytes]], read: bool = False) -> list[socket.socket]:
    out = []
    for source, data in requests:
        sock = visitor(url, source, 5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(data)
        out.append(sock)
    return out


def closed_within(sock: socket.socket, seconds: float) -> str:
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return f"still open after {seconds:.0f} s"
    except OSError:
        pass
    return f"closed after {time.monotonic() - started:.1f} s"


def point1(up: str, url: str) -> None:
    slow = holders(url, [("127.0.0.2", get(f"/big/{i}")) for i in range(32)])
    time.sleep(1)
    print(
        f"1  32 slow readers of 16 MB: another visitor gets {timed(url, get('/small'))}; "
        f"readyz {timed(url, get('/_gate/readyz'))}"
    )
    for s in slow:
        s.close()
    time.sleep(1)
    stalled = holders(url, [(f"127.0.0.{2 + i}", get("/stall")) for i in range(32)])
    time.sleep(1)
    print(
        f"1  32 visitors on one stalling URL: another visitor gets {timed(url, get('/ok'))}; "
        f"readyz {timed(url, get('/_gate/readyz'))}"
    )
    for s in stalled:
        s.close()


def point2(url: str) -> None:
    smuggled = 0
    for _ in range(20):
        with visitor(url) as sock:
            sock.sendall(get("/first"))
            read_response(sock)
        with visitor(url) as sock:
            sock.sendall(get("/second"))
            answer = read_response(sock)
        smuggled += bool(answer and answer[2] == b"SMUGGLED")
    print(f"2  short Content-Length: the next visitor got the leftover response {smuggled} times out of 20")


def point8(url: str, pid: int) -> None:
    before = rss_mb(pid)[0]
    header = b"GET / HTTP/1.1\r\nHost: gate.test\r\nX-Big: "
    socks = []
    for _ in range(10):
        sock = visitor(url, timeout=5)
        socks.append(sock)
        sent, deadline = 0, time.monotonic() + 10
        try:
            sock.sendall(header)
            while sent < 50 * 1024 * 1024 and time.monotonic() < deadline:
                sent += sock.send(b"a" * 1024 * 1024)
        except OSError:
            pass
    time.sleep(0.5)
    now, peak = rss_mb(pid)
    print(f"8  ten unfinished 50 MB request headers: RSS {before:.0f} MB -> {now:.0f} MB (peak {peak:.0f} MB)")
    for s in socks:
        s.close()
    with visitor(url, timeout=5) as idle:
        print(f"8  a connection that sends nothing: {closed_within(idle, 15)}")
    with visitor(url, timeout=5) as half:
        half.sendall(b"GET / HTTP/1.1\r\nHost: gate.test\r\n")
        print(f"8  a half-sent request: {closed_within(half, 15)}")


def point8_files(up: str) -> None:
    with gate(up, nofile=1024) as (url, pid):
        slow = []
        try:
            for i in range(1100):
                sock = visitor(url, f"127.0.{1 + i // 250}.{2 + i % 250}", 5)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: gate.test\r\n")
                slow.append(sock)
            time.sleep(0.5)
            limits = [ln for ln in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in ln]
            soft_hard = " ".join(limits[0].split()[3:5])
            print(
                f"8  1,100 slow connections, started with a soft limit of 1,024 open files ({soft_hard} "
                f"soft/hard now): another visitor gets {timed(url, get('/ok'), timeout=5)}"
            )
        finally:
            for s in slow:
                s.close()


def point10(up: str) -> None:
    with gate(up, toml="upstream_read_timeout = 2.0\n") as (url, _):
        print(f"10 page stalling after its headers (read timeout 2 s): {timed(url, get('/stalled-page'))}")
        print(f"10 duplicate Host: {timed(url, get('/ok', extra='Host: evil.test' + chr(13) + chr(10)))}")
        print(f"10 /jobs%0a1: {timed(url, get('/jobs%0a1'))}")


def main() -> None:
    with origin() as up:
        with gate(up) as (url, pid):
            point1(up, url)
        with gate(up) as (url, pid):
            point2(url)
            point8(url, pid)
        point8_files(up)
        point10(up)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()
