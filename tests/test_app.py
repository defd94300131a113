"""gate/app.py: the app assembles. Every /_gate/ route answers itself (none falls through to the
proxy, which would hand it to the origin), every site-bound route answers 421 for a Host gate does not
serve, and app.state is one typed object whose pools the lifespan opens and closes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx

from gate import app as gate_app
from gate.banner import static_url
from gate.context import Gate
from gate.recording.recorder import Recorder
from gate.settings import Site
from gate.upstream import Upstream

from .conftest import asgi_client, gate_settings

pytestmark = pytest.mark.anyio
ORIGIN = "http://origin.test"
TOKEN = "report-token-0123456789abcdef"
SELF = {"origin": "http://gate.test"}

# Every route under /_gate/ with a request it must answer itself, and how it answers one that carries
# no credentials or body: the endpoint's own refusal is enough to show it is the one that answered.
ROUTES = [
    ("GET", "/_gate/consent", {}, 200),
    ("POST", "/_gate/consent", {"data": {"choice": "accept_all"}, "headers": SELF}, 303),
    ("DELETE", "/_gate/consent", {"headers": SELF}, 200),
    ("GET", "/_gate/preferences", {}, 200),
    ("GET", "/_gate/notice", {}, 200),
    ("GET", "/_gate/healthz", {}, 200),
    ("GET", "/_gate/readyz", {}, 200),
    ("GET", static_url("gate.js"), {}, 200),
    ("POST", "/_gate/beacon", {"content": b"{}", "headers": SELF | {"content-type": "text/plain"}}, 400),
    ("POST", "/_gate/csp-report", {"content": b"{}", "headers": SELF | {"content-type": "text/plain"}}, 415),
    ("GET", "/_gate/report", {}, 401),
    ("GET", "/_gate/report.json", {}, 401),
    ("GET", "/_gate/report.csv", {}, 401),
    ("GET", "/_gate/metrics", {}, 401),
    ("GET", "/_gate/receipts/0123456789abcdef", {}, 401),
]


def recording_settings(tmp_path: Path, **overrides: object):
    return gate_settings(ORIGIN, store=str(tmp_path / "gate.sqlite3"), report_token=TOKEN, **overrides)


@pytest.mark.parametrize(
    ("method", "path", "request_kwargs", "status"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
async def test_every_gate_route_answers_itself(tmp_path, method, path, request_kwargs, status) -> None:
    app = gate_app.create_app(recording_settings(tmp_path))
    with respx.mock(assert_all_called=False) as mock:
        origin = mock.route(host="origin.test").mock(return_value=httpx.Response(200, text="the origin"))
        async with asgi_client(app) as client:
            readiness_probes = origin.call_count  # readyz may ask the origin whether it answers
            r = await client.request(method, path, **request_kwargs)
    assert r.status_code == status, r.text
    assert "the origin" not in r.text
    if path != "/_gate/readyz":
        assert origin.call_count == readiness_probes, f"{method} {path} went to the origin"


async def test_app_state_is_one_gate_whose_lifespan_opens_and_closes_the_pools(tmp_path) -> None:
    app = gate_app.create_app(recording_settings(tmp_path))
    assert list(vars(app.state)["_state"]) == ["gate"]
    gate = app.state.gate
    assert isinstance(gate, Gate) and gate.upstream is None and gate.recorder is None
    with respx.mock(assert_all_called=False):
        async with asgi_client(app):
            assert isinstance(gate.upstream, Upstream) and isinstance(gate.recorder, Recorder)
            assert gate.readiness.checks["store"] == gate.recorder.check_store
            pool = gate.upstream
    assert pool.client.is_closed and pool.probe.is_closed


async def test_an_unknown_host_is_421_on_every_route_bound_to_a_site(tmp_path) -> None:
    """The sites here are named; a Host none of them has is refused the same way everywhere, and the
    site gate does serve is answered (the same requests, another Host)."""
    conf = recording_settings(tmp_path, sites=(Site(upstream=ORIGIN, host="jobs.example.jp"),))
    requests = [
        ("GET", "/", {}),
        ("GET", "/_gate/consent", {}),
        ("POST", "/_gate/consent", {"data": {"choice": "accept_all"}}),
        ("DELETE", "/_gate/consent", {}),
        ("GET", "/_gate/preferences", {}),
        ("GET", "/_gate/notice", {}),
        ("POST", "/_gate/beacon", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("POST", "/_gate/csp-report", {"content": b"{}", "headers": {"content-type": "application/csp-report"}}),
    ]
    app = gate_app.create_app(conf)
    with respx.mock(assert_all_called=False) as mock:
        origin = mock.route(host="origin.test").mock(return_value=httpx.Response(200, text="the origin"))
        async with asgi_client(app, base_url="http://other.example.jp") as stranger:
            refused = [(await stranger.request(m, p, **kw)).status_code for m, p, kw in requests]
        assert not origin.called
        async with asgi_client(app, base_url="http://jobs.example.jp") as visitor:
            served = [(await visitor.request(m, p, **kw)).status_code for m, p, kw in requests]
    assert refused == [421] * len(requests)
    assert 421 not in served, served
