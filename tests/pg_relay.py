"""A TCP relay in front of the test PostgreSQL that a test can turn hostile, with raw sockets.

- ``relay``: bytes pass both ways (a healthy store);
- ``hang``: requests still reach the server, answers are held back (a store that accepts and never
  answers; a COMMIT may well happen without the client hearing of it), until ``relay`` again;
- ``refuse``: every open connection is closed and every new one closed at once (a store that is down).

``accepted`` counts the connections gate opened: how often it reconnected. Threads are daemons and
every socket is closed by ``close()``.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit


class PgRelay:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
        self.mode = "relay"
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str) -> None:
        assert mode in ("relay", "hang", "refuse")
        self.mode = mode
        if mode == "refuse":
            self._drop()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._drop()

    def _drop(self) -> None:
        for s in list(self._sockets):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._sockets.clear()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "refuse":
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._sockets += [client, server]
            if self.mode == "refuse":  # refused while this one was being connected
                self._drop()
                continue
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode == "refuse":
                    break
                while answers and self.mode == "hang" and not self._closed:
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
