"""/_gate/readyz: 200 ``ready``; 503 with the reason while draining, when no origin answers, or when a
registered check (the report store) fails. The origin probe is cheap: cached, one at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import time

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import readiness, settings
from gate.readiness import Readiness, draining_on_signals
from gate.settings import Site

from .conftest import asgi_client, gate_settings
from .gate_process import KEY, gate_process, slow_origin

ORIGIN = "http://origin.test"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def readyz(conf, origin_answer=None, *, before=None) -> httpx.Response:
    app = gate_app.create_app(conf)
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(side_effect=origin_answer or httpx.ConnectError("refused"))
        async with asgi_client(app) as client:
            if before:
                before(app)
            return await client.get("/_gate/readyz")


@pytest.mark.anyio
async def test_demo_is_ready():
    r = await readyz(settings.load({}, {}))
    assert (r.status_code, r.text, r.headers["cache-control"]) == (200, "ready", "no-store")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer", [httpx.Response(200), httpx.Response(404), httpx.Response(500)], ids=["200", "404", "500"]
)
async def test_any_answer_from_the_origin_is_ready(answer):
    assert (await readyz(gate_settings(ORIGIN), answer)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")], ids=["refused", "timeout"]
)
async def test_an_origin_that_cannot_be_reached_is_not_ready(error):
    r = await readyz(gate_settings(ORIGIN), error)
    assert r.status_code == 503
    assert r.text == f"not ready: upstream of the default site unreachable ({type(error).__name__})"
    assert ORIGIN not in r.text  # the origin's address is for the log, not the public


@pytest.mark.anyio
async def test_draining_is_not_ready():
    r = await readyz(settings.load({}, {}), before=lambda app: app.state.gate.readiness.drain())
    assert (r.status_code, r.text) == (503, "not ready: draining (shutting down)")


@pytest.mark.anyio
async def test_a_failing_registered_check_is_not_ready_and_logs_the_detail(caplog):
    async def store() -> None:
        raise ConnectionError("postgres at 10.0.0.9 refused")

    r = await readyz(settings.load({}, {}), before=lambda app: app.state.gate.readiness.checks.update(store=store))
    assert (r.status_code, r.text) == (503, "not ready: store: ConnectionError")
    assert any(
        "store failed: ConnectionError: postgres at 10.0.0.9 refused" in rec.getMessage() for rec in caplog.records
    )


@pytest.mark.anyio
async def test_one_origin_down_among_several_keeps_the_instance_ready():
    conf = gate_settings(ORIGIN)
    conf = dataclasses.replace(
        conf, sites=(Site(upstream=ORIGIN, host="a.example"), Site(upstream="http://other.test", host="b.example"))
    )

    down = {"origin.test"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host in down:
            raise httpx.ConnectError("refused")
        return httpx.Response(200)

    app = gate_app.create_app(conf)
    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(side_effect=answer)
        async with asgi_client(app) as client:
            r = await client.get("/_gate/readyz")
            assert (r.status_code, r.text) == (200, "ready")
            down.add("other.test")
            app.state.gate.readiness.clock = lambda: time.monotonic() + readiness.CACHE_SECONDS  # the cache is stale
            r = await client.get("/_gate/readyz")
    assert (r.status_code, r.text) == (
        503,
        "not ready: upstream of a.example unreachable (ConnectError); upstream of b.example unreachable (ConnectError)",
    )


@pytest.mark.anyio
async def test_the_probe_is_cached_and_never_concurrent():
    app = gate_app.create_app(gate_settings(ORIGIN))
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(host="origin.test", method="HEAD").mock(return_value=httpx.Response(200))
        async with asgi_client(app) as client:
            answers = await asyncio.gather(*(client.get("/_gate/readyz") for _ in range(10)))
            assert all(a.status_code == 200 for a in answers) and route.call_count == 1
            assert route.calls.last.request.url == ORIGIN + "/"
            later = time.monotonic() + readiness.CACHE_SECONDS
            app.state.gate.readiness.clock = lambda: later
            await client.get("/_gate/readyz")
            assert route.call_count == 2


@pytest.mark.anyio
async def test_the_lifespans_shutdown_drains():
    app = gate_app.create_app(settings.load({}, {}))
    async with asgi_client(app):
        assert not app.state.gate.readiness.draining
    assert app.state.gate.readiness.draining


# -- the signal ---------------------------------------------------------------------------------
def test_sigterm_marks_draining_then_reaches_the_servers_handler():
    seen: list[int] = []

    def server_handler(signum, frame):  # what uvicorn installs: it starts the graceful shutdown
        seen.append(signum)

    before = signal.signal(signal.SIGTERM, server_handler)
    try:
        ready = Readiness(settings.load({}, {}))
        with draining_on_signals(ready):
            assert not ready.draining
            signal.raise_signal(signal.SIGTERM)
            assert ready.draining and seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is server_handler  # put back when the app stops
    finally:
        signal.signal(signal.SIGTERM, before)


def test_without_a_server_handler_nothing_is_chained():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with draining_on_signals(Readiness(settings.load({}, {}))):
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


# -- a real process -------------------------------------------------------------------------------
def test_a_real_gate_goes_unready_when_its_origin_goes_down():
    origin_running = slow_origin()
    origin = origin_running.__enter__()
    try:
        with gate_process("--upstream", origin, env={"GATE_SECRET_KEY": KEY}) as gate:
            assert httpx.get(gate.url + "/_gate/readyz").text == "ready"
            origin_running.__exit__(None, None, None)
            deadline = time.monotonic() + 3 * readiness.CACHE_SECONDS + 5
            while (r := httpx.get(gate.url + "/_gate/readyz")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert r.status_code == 503 and "unreachable" in r.text
    finally:
        origin_running.__exit__(None, None, None)  # a second exit is harmless: the server is stopped


def test_a_real_gate_with_its_origin_down_is_not_ready():
    down = f"http://127.0.0.1:{closed_port()}"
    with gate_process("--upstream", down, env={"GATE_SECRET_KEY": KEY}) as gate:
        r = httpx.get(gate.url + "/_gate/readyz")
        assert r.status_code == 503 and r.text == "not ready: upstream of the default site unreachable (ConnectError)"
        assert httpx.get(gate.url + "/_gate/healthz").status_code == 200  # alive, just not ready
    assert f"readiness: upstream {down} failed: ConnectError" in gate.stderr  # the detail is in the log


@pytest.mark.anyio
async def test_a_store_that_cannot_be_reached_is_not_ready():
    conf = dataclasses.replace(gate_settings(ORIGIN), store="/proc/no-such-dir/gate.sqlite3")
    r = await readyz(conf, httpx.Response(200))
    assert r.status_code == 503 and r.text.startswith("not ready: store:")
    assert "/proc" not in r.text  # where the store lives is for the log


@pytest.mark.anyio
async def test_a_working_store_is_ready(tmp_path):
    conf = dataclasses.replace(gate_settings(ORIGIN), store=str(tmp_path / "gate.sqlite3"))
    assert (await readyz(conf, httpx.Response(200))).status_code == 200
