"""Logs: one access line per request (JSON when stderr is not a terminal, a compact line when it is)
with site, path template, status, bytes, upstream and rewrite time, and tag counts; never a cookie
value, a consent id or a query string."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import pickle
import time

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import logs
from gate.consent import COOKIE_NAME, decide

from .conftest import asgi_client, gate_settings

ORIGIN = "http://origin.test"
PAGE = (
    '<!doctype html><html><head><script async src="https://www.googletagmanager.com/gtag/js?id=G-X1"></script>'
    '<script src="https://connect.facebook.net/en_US/fbevents.js"></script></head><body><p>求人</p></body></html>'
)
SECRET_QUERY = "email=taro%40example.jp&token=s3cr3t"


def record(**access) -> logging.LogRecord:
    rec = logging.LogRecord("gate.access", logging.INFO, __file__, 1, "%s %s %s", ("GET", "/jobs/{id}", 200), None)
    rec.access = access
    return rec


ACCESS = {
    "site": "jobs.example.jp",
    "method": "GET",
    "path": "/jobs/{id}",
    "status": 200,
    "bytes": 15565,
    "duration_ms": 12.5,
    "upstream_ms": 10.25,
    "rewrite_ms": 1.2,
    "tags": {"kept": 1, "stripped": 2, "uncertain": 0},
}


# -- formats ----------------------------------------------------------------------------------
def test_json_line_carries_the_access_fields():
    line = logs.JSONFormatter().format(record(**ACCESS))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "info" and data["logger"] == "gate.access" and data["message"] == "GET /jobs/{id} 200"
    assert {k: data[k] for k in ACCESS} == ACCESS
    assert data["time"].endswith("+00:00")


def test_human_line_is_compact():
    line = logs.HumanFormatter().format(record(**ACCESS))
    assert line.endswith(
        "GET /jobs/{id} 200 15.2kB 12.5ms up=10.25ms rw=1.2ms kept=1 stripped=2 uncertain=0 site=jobs.example.jp"
    )


def test_other_records_keep_their_logger_and_message():
    rec = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None)
    assert json.loads(logs.JSONFormatter().format(rec))["message"] == "Started server process [7]"
    assert logs.HumanFormatter().format(rec).endswith("info  uvicorn.error: Started server process [7]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stderr", "formatter"), [(io.StringIO(), "json"), (Terminal(), "human")], ids=["piped", "terminal"]
)
def test_json_unless_stderr_is_a_terminal(stderr, formatter):
    conf = logs.config("info", stderr)
    assert conf["handlers"]["stderr"]["formatter"] == formatter


def test_config_replaces_uvicorns_access_log_and_quiets_httpx():
    conf = logs.config("debug")
    assert conf["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": False}
    assert conf["loggers"]["httpx"]["level"] == logging.WARNING  # its lines name upstream URLs with queries
    assert conf["root"]["level"] == logging.DEBUG and logs.config("trace")["root"]["level"] == logs.TRACE
    pickle.dumps(conf)  # uvicorn sends it to its worker processes


def test_config_applies():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logs.config("warning"))
        assert isinstance(root.handlers[0].formatter, logs.JSONFormatter) and root.level == logging.WARNING
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        logging.getLogger("httpcore").setLevel(logging.NOTSET)
        logging.getLogger("hpack").setLevel(logging.NOTSET)


def test_stopwatch_adds_up():
    watch = logs.Stopwatch()
    for _ in range(2):
        with watch:
            time.sleep(0.01)
    assert 0.02 <= watch.seconds < 1


# -- the access line, through the app ------------------------------------------------------------
async def requests_logged(paths: list[str], caplog, origin=None, **headers: str) -> list[logging.LogRecord]:
    app = gate_app.create_app(gate_settings(ORIGIN))
    with respx.mock(assert_all_called=False) as mock, caplog.at_level(logging.DEBUG):
        mock.route(host="origin.test").mock(
            side_effect=origin
            or (
                lambda request: httpx.Response(
                    200, headers={"content-type": "text/html; charset=utf-8"}, content=PAGE.encode()
                )
            )
        )
        async with asgi_client(app) as client:
            for path in paths:
                await client.get(path, headers=headers)
    return [r for r in caplog.records if r.name.startswith(("gate", "uvicorn"))]


@pytest.mark.anyio
async def test_one_access_line_per_page_with_timings_and_tag_counts(caplog):
    codec = gate_app.create_app(gate_settings(ORIGIN)).state.gate.codec
    registry = gate_app.create_app(gate_settings(ORIGIN)).state.gate.registry
    consent = decide(registry, ["improvement"])
    cookie = codec.dumps(consent)
    records = await requests_logged([f"/jobs/12345?{SECRET_QUERY}"], caplog, cookie=f"{COOKIE_NAME}={cookie}")
    [access] = [r for r in records if r.name == "gate.access"]
    fields = access.access
    assert fields["site"] == "default" and fields["method"] == "GET" and fields["path"] == "/jobs/{id}"
    assert fields["status"] == 200 and fields["bytes"] > len(PAGE) - 200  # facebook's script is gone
    assert fields["upstream_ms"] > 0 and fields["rewrite_ms"] > 0 and fields["duration_ms"] >= fields["upstream_ms"]
    assert fields["tags"] == {"kept": 1, "stripped": 1, "uncertain": 0}
    text = "\n".join(logs.JSONFormatter().format(r) + logs.HumanFormatter().format(r) for r in records)
    for secret in (cookie, consent.consent_id, SECRET_QUERY, "s3cr3t", "taro", "?"):
        assert secret not in text


@pytest.mark.anyio
async def test_gates_own_answers_are_logged_without_upstream_time(caplog):
    records = await requests_logged(["/_gate/healthz", "/_gate/consent?x=1"], caplog)
    lines = [r.access for r in records if r.name == "gate.access"]
    assert [(f["path"], f["status"], f["upstream_ms"], f["rewrite_ms"]) for f in lines] == [
        ("/_gate/healthz", 200, None, None),
        ("/_gate/consent", 200, None, None),
    ]
    assert lines[0]["bytes"] == 2 and "tags" not in lines[0]


@pytest.mark.anyio
async def test_an_unreachable_origin_is_logged_as_502_with_its_upstream_time(caplog):
    def down(request):
        raise httpx.ConnectError("refused")

    records = await requests_logged(["/"], caplog, origin=down)
    [fields] = [r.access for r in records if r.name == "gate.access"]
    assert fields["status"] == 502 and fields["upstream_ms"] is not None and "tags" not in fields


@pytest.mark.anyio
async def test_no_access_line_when_info_is_off(caplog):
    app = gate_app.create_app(gate_settings(ORIGIN))
    with caplog.at_level(logging.WARNING):
        async with asgi_client(app) as client:
            await client.get("/_gate/healthz")
    assert not [r for r in caplog.records if r.name == "gate.access"]
