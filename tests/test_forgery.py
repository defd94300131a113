"""Nobody writes the report but the pages gate served: beacons and CSP reports count only with the
token of a page gate served (signed, bound to site and path, counted once); consent posts are limited
per client across every worker; the report says how many submissions it refused and why."""

from __future__ import annotations

import json
import re
import signal

import httpx
import pytest

from .conftest import asgi_client
from .gate_process import gate_process
from .store_support import AUTH, SELF, recording_app, token_query

pytestmark = pytest.mark.anyio
TEXT = {"content-type": "text/plain;charset=UTF-8"}
CSP = {"content-type": "application/csp-report"} | SELF
LEAK = json.dumps({"v": 1, "page": "/jobs/dh-001", "hosts": ["connect.facebook.net"]}).encode()


@pytest.fixture
def app(tmp_path):
    return recording_app(str(tmp_path / "gate.sqlite3"))


async def report(app, client) -> dict:
    await app.state.gate.recorder.flush()
    return (await client.get("/_gate/report.json", headers=AUTH)).json()


def served_token(page: httpx.Response) -> str:
    return re.search(r'<meta data-gate name="gate-token" content="([^"]+)"', page.text).group(1)


async def test_a_forged_beacon_without_a_page_token_is_refused_and_reported(app):
    async with asgi_client(app) as client:
        statuses = [
            (await client.post("/_gate/beacon", content=LEAK, headers=SELF | TEXT)).status_code for _ in range(5)
        ]  # a forged Origin is free: 24,240 "field leaks" before
        data = await report(app, client)
    assert statuses == [403] * 5
    assert data["totals"]["field_leaks"] == 0 and data["totals"]["beacons"] == 0
    assert data["rejected"] == {"beacon:no_token": 5} and data["totals"]["rejected"] == 5


async def test_a_page_token_counts_once_for_its_own_page_only(app):
    async with asgi_client(app) as client:
        token = served_token(await client.get("/jobs/dh-001"))
        first = await client.post("/_gate/beacon", params={"t": token}, content=LEAK, headers=SELF | TEXT)
        again = await client.post("/_gate/beacon", params={"t": token}, content=LEAK, headers=SELF | TEXT)
        other_page = json.dumps({"v": 1, "page": "/jobs/dh-002", "hosts": ["connect.facebook.net"]}).encode()
        moved = await client.post(
            "/_gate/beacon",
            params={"t": served_token(await client.get("/jobs/dh-001"))},
            content=other_page,
            headers=SELF | TEXT,
        )
        tampered = await client.post(
            "/_gate/beacon", params={"t": token[:-2] + "xx"}, content=LEAK, headers=SELF | TEXT
        )
        app.state.gate.page_tokens.max_age = -1  # every token is now past its age
        old = await client.post(
            "/_gate/beacon",
            params={"t": served_token(await client.get("/jobs/dh-001"))},
            content=LEAK,
            headers=SELF | TEXT,
        )
        data = await report(app, client)
    assert [r.status_code for r in (first, again, moved, tampered, old)] == [204, 403, 403, 403, 403]
    assert data["totals"]["field_leaks"] == 1 and data["totals"]["beacons"] == 1
    assert data["rejected"] == {
        "beacon:replayed": 1,
        "beacon:wrong_page": 1,
        "beacon:bad_token": 1,
        "beacon:expired": 1,
    }


async def test_a_token_for_another_site_does_not_count(app):
    async with asgi_client(app) as client:
        r = await client.post(
            "/_gate/beacon",
            params=token_query(app, "/jobs/dh-001", site="other.example"),
            content=LEAK,
            headers=SELF | TEXT,
        )
        data = await report(app, client)
    assert r.status_code == 403 and data["rejected"] == {"beacon:wrong_site": 1}


async def test_csp_reports_count_only_with_the_pages_report_uri_and_once(app):
    blocked = json.dumps({"csp-report": {"blocked-uri": "https://connect.facebook.net/en_US/fbevents.js"}})
    async with asgi_client(app) as client:
        forged = [
            (await client.post("/_gate/csp-report", content=blocked, headers=CSP)).status_code for _ in range(20)
        ]  # 30,000 "attempted" in 0.7 s before
        page = await client.get("/jobs/dh-001")
        uri = re.search(r"report-uri (\S+)", page.headers["content-security-policy-report-only"]).group(1)
        assert uri.startswith("/_gate/csp-report?t=")
        counted = [(await client.post(uri, content=blocked, headers=CSP)).status_code for _ in range(3)]
        data = await report(app, client)
    assert forged == [403] * 20 and counted == [204, 403, 403]
    pixel = next(t for t in data["tags"] if t["tag"] == "facebook.pixel")
    assert pixel["attempted"] == 1
    assert data["rejected"] == {"csp:no_token": 20, "csp:replayed": 2}


def test_consent_posts_are_limited_per_client_across_workers(tmp_path):
    """2,000 forged receipts a second before. Two workers, a fresh connection for every post (so both
    workers answer): one budget for the client, not one per worker."""
    env = {"GATE_STORE": str(tmp_path / "data" / "gate.sqlite3")}
    with gate_process("--workers", "2", env=env) as gate:
        statuses = []
        for _ in range(60):
            with httpx.Client(base_url=gate.url, timeout=10) as client:  # a new connection each time
                r = client.post("/_gate/consent", data={"choice": "accept_all"}, headers={"origin": gate.url})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) > 0 and "set-cookie" not in r.headers
        gate.process.send_signal(signal.SIGTERM)  # the parent stops its workers (a SIGKILL would orphan them)
        gate.process.wait(timeout=30)
    assert 20 <= statuses.count(303) <= 25 and statuses.count(429) >= 35, statuses
