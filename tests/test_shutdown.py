"""Graceful shutdown of a real `gate serve` process: on SIGTERM it stops accepting, lets in-flight
responses (streamed pages included) finish up to shutdown_timeout, runs the app's shutdown, exits 0."""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time

import httpx
import pytest

from .gate_process import KEY, gate_process, slow_origin

# How a new connection goes unserved: refused, or (under load, when it reached the listen backlog as
# the server closed it) closed or reset before any answer.
UNSERVED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


def refused_soon(url: str, within: float = 3.0) -> bool:
    """Whether new connections to ``url`` go unserved within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/_gate/healthz", timeout=0.5)
        except UNSERVED:
            return True
        except httpx.TimeoutException:
            pass
        time.sleep(0.05)
    return False


def test_sigterm_finishes_the_streaming_page_then_exits_0():
    with slow_origin() as origin, gate_process("--upstream", origin, env={"GATE_SECRET_KEY": KEY}) as gate:
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "GET",
                gate.url + "/slow?n=15",
                headers={"accept-encoding": "identity"},  # bytes: as sent
            ) as r,
        ):
            chunks = r.iter_bytes()
            first = next(chunks)
            gate.process.send_signal(signal.SIGTERM)
            assert refused_soon(gate.url), "still accepting after SIGTERM"
            body = first + b"".join(chunks)
        assert r.status_code == 200
        assert b"<p>chunk 14</p><p>the end</p>" in body and b'id="gate-banner"' in body
        assert body.rstrip().endswith(b"</html>")
        assert gate.process.wait(timeout=20) == 0
    lines = [json.loads(ln) for ln in gate.stderr.splitlines() if ln.startswith("{")]
    messages = [ln["message"] for ln in lines]
    assert "Application shutdown complete." in messages  # the lifespan's shutdown ran, after the stream
    [access] = [ln for ln in lines if ln["logger"] == "gate.access" and ln["path"] == "/slow"]
    assert access["status"] == 200 and access["bytes"] == len(body)
    assert messages.index("Application shutdown complete.") > lines.index(access)


def test_sigterm_cuts_a_response_that_outlives_the_deadline(tmp_path):
    toml = tmp_path / "gate.toml"
    toml.write_text("shutdown_timeout = 1\n", encoding="utf-8")
    with (
        slow_origin() as origin,
        gate_process("--upstream", origin, "--config", str(toml), env={"GATE_SECRET_KEY": KEY}) as gate,
    ):
        body = b""
        with httpx.Client(timeout=30) as client, client.stream("GET", gate.url + "/slow?n=100&delay=0.1") as r:
            chunks = r.iter_bytes()
            body += next(chunks)
            gate.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError):  # cut: a truncated page never looks complete
                for chunk in chunks:
                    body += chunk
        assert gate.process.wait(timeout=20) == 0
        assert time.monotonic() - started < 8  # 1 s deadline, not the 10 s the page would take
        assert b"the end" not in body
    assert "Application shutdown complete." in gate.stderr


def test_sigterm_with_nothing_in_flight_exits_0_at_once():
    with gate_process() as gate:  # demo mode
        assert httpx.get(gate.url + "/_gate/readyz").text == "ready"
        gate.process.send_signal(signal.SIGTERM)
        assert gate.process.wait(timeout=20) == 0
    assert "Application shutdown complete." in gate.stderr


@pytest.mark.parametrize("linger", [False, True], ids=["closed-unanswered", "reset"])
def test_a_connection_closed_or_reset_unanswered_counts_as_refused(linger):
    """The helper itself: a closing server may take the connection and drop it (RemoteProtocolError) or
    reset it (ReadError) rather than refuse it; both mean it no longer serves."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(0.2)
        stop = time.monotonic() + 5

        def drop() -> None:
            while time.monotonic() < stop:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                if linger:  # close with RST instead of FIN
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    conn.recv(65536)
                conn.close()

        thread = threading.Thread(target=drop, daemon=True)
        thread.start()
        port = server.getsockname()[1]
        assert refused_soon(f"http://127.0.0.1:{port}", within=2.0)
        stop = 0
        thread.join(timeout=5)
