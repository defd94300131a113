"""gate.later: the access line is written while the worker would otherwise wait, never lost: when gate
next waits for an origin, within MAX_DELAY when nothing else comes, at once when MAX_HELD are held, and
when the app shuts down; in the order the responses ended, whatever one of them raises."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import httpx
import pytest

from gate import later, pool
from gate.later import Later

from .conftest import asgi_client, gate_settings
from .hostile import raw_origin, sleep_unless

pytestmark = pytest.mark.anyio


async def test_held_work_runs_within_max_delay_when_nothing_else_comes() -> None:
    queue, ran = Later(), []
    queue.hold(lambda: ran.append(time.monotonic()))
    held_at = time.monotonic()
    assert ran == []  # not before the response's caller has gone on
    await asyncio.sleep(later.MAX_DELAY * 4)
    assert len(ran) == 1 and ran[0] - held_at < later.MAX_DELAY * 3


async def test_held_work_runs_in_order_and_a_failure_stops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    queue, ran = Later(), []

    def fails() -> None:
        raise ValueError("boom")

    queue.hold(lambda: ran.append(1))
    queue.hold(fails)
    queue.hold(lambda: ran.append(2))
    queue.run()
    assert ran == [1, 2]
    assert any("held work failed" in r.getMessage() for r in caplog.records)


async def test_max_held_runs_at_once() -> None:
    queue, ran = Later(), []
    for i in range(later.MAX_HELD):
        queue.hold(lambda i=i: ran.append(i))
    assert ran == list(range(later.MAX_HELD))


async def test_work_held_on_another_loop_runs_before_this_loops() -> None:
    queue, ran = Later(), []
    queue.hold(lambda: ran.append("old"))
    queue._loop = object()  # type: ignore[assignment]  # as if held by a loop that has ended since
    queue.hold(lambda: ran.append("new"))
    assert ran == ["old"]
    queue.run()
    assert ran == ["old", "new"]


async def test_held_work_runs_when_gate_waits_for_an_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    # The origin answers 0.3 s late; the timer is far off: only the read that waits can run the work.
    monkeypatch.setattr(later, "MAX_DELAY", 30.0)
    stopped = threading.Event()

    def answer(sock: socket.socket, head: bytes, n: int) -> bool:
        sleep_unless(stopped, 0.3)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    ran: list[float] = []
    with raw_origin(answer, stopped) as origin:
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        async with httpx.AsyncClient(transport=pool.transport(limits)) as client:
            later.LATER.hold(lambda: ran.append(time.monotonic()))
            response = await client.get(origin.url + "/")
            answered = time.monotonic()
    assert response.content == b"ok"
    assert len(ran) == 1 and answered - ran[0] > 0.2  # it ran while the origin was still working


async def test_the_access_lines_are_written_by_the_time_the_app_has_shut_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import respx

    from gate import app as gate_app

    app = gate_app.create_app(gate_settings("http://origin.test"))
    with respx.mock(assert_all_called=False) as mock, caplog.at_level(logging.INFO):
        mock.route(host="origin.test").mock(return_value=httpx.Response(200, content=b"x"))
        async with asgi_client(app) as client:
            for i in range(5):
                await client.get(f"/file-{i}.bin")
    lines = [r.access["path"] for r in caplog.records if r.name == "gate.access"]
    assert lines == [f"/file-{i}.bin" for i in range(5)]
