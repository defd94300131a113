"""Hostile peers over loopback, written with raw sockets: an origin that misbehaves on purpose (uvicorn
would not) and visitors that never finish a request or never read an answer.

- ``raw_origin(answer)``: a TCP server on 127.0.0.1 in a thread. Each request head it reads on a
  connection is handed to ``answer(sock, head, n)`` (``n``: the request's index on that connection),
  which writes whatever it likes and returns True to read the next request, False to close. Request
  bodies are not read: the hostile origins here answer GETs and HEADs.
- ``visitor(url, source=...)``: a raw socket to gate, bound to a loopback source address of its choice
  (127.0.0.2 is another visitor than 127.0.0.1 on Linux), with a deadline on every read.
- ``read_response(sock)``: one HTTP/1.1 response as (status, headers, body), or None when the connection
  ended first.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

Answer = Callable[[socket.socket, bytes, int], bool]


class RawOrigin:
    def __init__(self, answer: Answer, stopped: threading.Event | None = None) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.heads: list[bytes] = []  # every request head received, in order
        self.stopped = stopped or threading.Event()  # set when the test ends: answers that wait must end
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="raw-origin", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffered, n = b"", 0
        conn.settimeout(0.2)
        try:
            while not self.stopped.is_set():
                while b"\r\n\r\n" not in buffered:
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        if self.stopped.is_set():
                            return
                        continue
                    if not data:
                        return
                    buffered += data
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                self.heads.append(head)
                if not self.answer(conn, head, n):
                    return
                n += 1
        except OSError:
            return
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)
        self.listener.close()
        for conn in self._open:
            try:
                conn.close()
            except OSError:
                pass


@contextmanager
def raw_origin(answer: Answer, stopped: threading.Event | None = None) -> Iterator[RawOrigin]:
    origin = RawOrigin(answer, stopped)
    try:
        yield origin
    finally:
        origin.stop()


def path_of(head: bytes) -> str:
    return head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")


def method_of(head: bytes) -> str:
    return head.split(b" ", 1)[0].decode("latin-1")


def sleep_unless(stopped: threading.Event, seconds: float) -> bool:
    """Sleep; False when the origin was stopped meanwhile (its answers must end with the test)."""
    return not stopped.wait(seconds)


def visitor(url: str, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout, source_address=(source, 0))
    return sock


def get(path: str, host: str = "gate.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


def read_response(sock: socket.socket, limit: int = 1 << 20) -> tuple[int, dict[str, str], bytes] | None:
    """One response (Content-Length or chunked framing), or None if the connection ended or reset first."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        if "content-length" in headers:
            need = int(headers["content-length"])
            while len(body) < need:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                body += chunk
            return status, headers, body[:need]
        if headers.get("transfer-encoding") == "chunked":
            while not body.endswith(b"0\r\n\r\n") and len(body) < limit:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                body += chunk
            return status, headers, _unchunk(body)
        return status, headers, body
    except (ConnectionResetError, TimeoutError):
        return None


def _unchunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, rest = body.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2 :]


def drained(sock: socket.socket, seconds: float) -> tuple[int, bool]:
    """Read for up to ``seconds``: (bytes read, whether the connection ended)."""
    total, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            break
        except ConnectionResetError:
            return total, True
        if not chunk:
            return total, True
        total += len(chunk)
    return total, False
