"""POST /_gate/beacon: fired tags, field leaks and undeclared hosts, from what the browser reports; and a
crafted beacon can neither change consent, nor count for another site, nor exceed its limits."""

from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest

from gate.recording import beacon
from gate.recording.beacon import Attribution
from gate.settings import Site
from gate.vendors import load

from .conftest import asgi_client
from .store_support import AUTH, SELF, consent_cookie, recording_app

pytestmark = pytest.mark.anyio
TEXT = {"content-type": "text/plain;charset=UTF-8"}


def page_token(html: str) -> str:
    m = re.search(r'<meta data-gate name="gate-token" content="([^"]+)"', html)
    assert m, "no page token in the page"
    return m.group(1)


async def post(client, content: bytes, headers: dict, token: str | None = None):
    """A beacon as the page it names sends it: with that page's token (fetched first, as a browser would)."""
    if token is None:
        try:
            page = json.loads(content)["page"]
        except (ValueError, TypeError, KeyError):
            page = "/jobs/dh-001"
        if not isinstance(page, str) or not page.startswith("/") or page.startswith("//"):
            page = "/jobs/dh-001"
        token = page_token((await client.get(page)).text)
    return await client.post("/_gate/beacon", params={"t": token}, content=content, headers=headers)


def body(page: str = "/jobs/dh-001", hosts: list[str] | None = None, **extra) -> bytes:
    return json.dumps({"v": 1, "page": page, "hosts": hosts or []} | extra).encode()


async def report(app, client, site: str = "*") -> dict:
    await app.state.gate.recorder.flush()
    return (await client.get("/_gate/report.json", params={"site": site}, headers=AUTH)).json()


def tag(data: dict, tag_id: str) -> dict:
    return next(r for r in data["tags"] if r["tag"] == tag_id)


def findings(data: dict, kind: str) -> dict[str, dict]:
    return {f["subject"]: f for f in data["findings"] if f["kind"] == kind}


@pytest.fixture
def app(tmp_path):
    return recording_app(str(tmp_path / "gate.sqlite3"))


# -- what it counts -----------------------------------------------------------------------------------
async def test_fired_tags_are_counted_for_the_visitors_consent(app):
    async with asgi_client(app) as client:
        client.cookies.update(consent_cookie(app, ["improvement", "advertising"]))
        r = await post(
            client, content=body(hosts=["connect.facebook.net", "www.google-analytics.com"]), headers=SELF | TEXT
        )
        assert r.status_code == 204
        data = await report(app, client)
    assert tag(data, "facebook.pixel")["fired"] == 1 and tag(data, "google.analytics")["fired"] == 1
    assert data["totals"]["field_leaks"] == 0 and data["totals"]["beacons"] == 1


async def test_a_refused_tag_that_fired_is_a_field_leak_with_its_page(app):
    async with asgi_client(app) as client:  # undecided: everything refused
        await post(client, content=body("/jobs/dh-002", ["connect.facebook.net"]), headers=SELF | TEXT)
        data = await report(app, client)
    leak = findings(data, "leak")["facebook.pixel"]
    assert leak["count"] == 1 and leak["examples"][0]["path"] == "/jobs/{id}"
    assert tag(data, "facebook.pixel")["field_leaks"] == 1


async def test_gtag_host_is_no_leak_when_only_analytics_is_accepted(app):
    """www.googletagmanager.com serves gtag.js for GA4 too: Tag Manager is refused, GA4 is not."""
    async with asgi_client(app) as client:
        client.cookies.update(consent_cookie(app, ["improvement"]))
        await post(client, content=body(hosts=["www.googletagmanager.com"]), headers=SELF | TEXT)
        data = await report(app, client)
    assert data["totals"]["field_leaks"] == 0 and tag(data, "google.analytics")["fired"] == 1


async def test_an_unknown_third_party_host_is_undeclared_and_own_hosts_are_not(app):
    async with asgi_client(app) as client:
        hosts = ["cdn.example.org", "gate.test", "img.gate.test"]
        await post(client, content=body(hosts=hosts), headers=SELF | TEXT)
        data = await report(app, client)
    assert set(findings(data, "undeclared_host")) == {"cdn.example.org"}


async def test_a_beacon_never_changes_consent(app):
    async with asgi_client(app) as client:
        before = (await client.get("/_gate/consent")).json()
        r = await post(
            client,
            content=body(
                hosts=["connect.facebook.net"],
            ),
            headers=SELF | TEXT,
        )
        assert r.status_code == 204 and "set-cookie" not in r.headers and r.headers["cache-control"] == "no-store"
        assert (await client.get("/_gate/consent")).json() == before


# -- what it refuses ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        (TEXT, body(), 403),
        ({"origin": "http://evil.example"} | TEXT, body(), 403),
        ({"referer": "http://evil.example/x"} | TEXT, body(), 403),
        (SELF | TEXT, b"x" * (beacon.MAX_BODY + 1), 413),
        (SELF | {"content-type": "application/x-www-form-urlencoded"}, b"hosts=a", 415),
        (SELF | TEXT, b"not json", 400),
        (SELF | TEXT, b"[]", 400),
        (SELF | TEXT, body(v=3), 400),
        (SELF | TEXT, json.dumps({"v": 1, "page": "/", "hosts": [], "site": "b.test"}).encode(), 400),
        (SELF | TEXT, json.dumps({"v": 1, "page": "/"}).encode(), 400),
        (SELF | TEXT, body(page="https://evil.example/"), 400),
        (SELF | TEXT, body(page="//evil.example/"), 400),
        (SELF | TEXT, body(hosts=["bad host!"]), 400),
        (SELF | TEXT, json.dumps({"v": 1, "page": "/", "hosts": [1]}).encode(), 400),
        (SELF | TEXT, body(hosts=[f"h{i}.example" for i in range(beacon.MAX_HOSTS + 1)]), 400),
    ],
    ids=[
        "no-origin",
        "foreign-origin",
        "foreign-referer",
        "too-large",
        "form",
        "not-json",
        "not-an-object",
        "wrong-version",
        "names-a-site",
        "no-hosts",
        "absolute-page",
        "scheme-relative-page",
        "bad-host",
        "host-not-a-string",
        "too-many-hosts",
    ],
)
async def test_bad_beacons_are_refused_and_count_nothing(app, headers, content, status):
    async with asgi_client(app) as client:
        r = await post(client, content=content, headers=headers)
        assert r.status_code == status and r.headers["cache-control"] == "no-store"
        data = await report(app, client)
    assert data["totals"]["beacons"] == 0 and all(f["kind"] == "rejected" for f in data["findings"])
    assert data["totals"]["rejected"] == 1  # and the report says one was refused


async def test_beacons_are_rate_limited_per_client(app):
    async with asgi_client(app) as client:
        statuses = [
            (await post(client, content=body(hosts=["connect.facebook.net"]), headers=SELF | TEXT)).status_code
            for _ in range(int(beacon.BURST) + 5)
        ]
        data = await report(app, client)
    assert statuses == [204] * int(beacon.BURST) + [429] * 5
    assert data["totals"]["beacons"] == beacon.BURST


def test_limits_are_shared_by_every_worker_and_refill_over_time(tmp_path):
    from gate.limits import Limits

    one, two = Limits(tmp_path / "limits.sqlite3"), Limits(tmp_path / "limits.sqlite3")  # two workers
    try:
        assert [w.take("beacon:a", 60, 2)[0] for w in (one, two, one)] == [None, None, "rate_limited"]
        assert two.take("beacon:b", 60, 2)[0] is None  # another client has its own bucket
        time.sleep(1.1)
        assert one.take("beacon:a", 60, 2)[0] is None and two.take("beacon:a", 60, 2)[0] == "rate_limited"
        assert one.take("beacon:c", 60, 9, ["b:n1"]) == (None, ["b:n1"])
        assert two.take("beacon:c", 60, 9, ["b:n1"]) == ("replayed", [])  # a token counts once, in any worker
    finally:
        one.close()
        two.close()


async def test_a_crafted_beacon_cannot_count_for_another_site(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    sites = (Site(upstream="demo", host="a.test"), Site(upstream="demo", host="b.test"))
    conf = dataclasses.replace(app.state.gate.settings, sites=sites)
    from gate.app import create_app

    app = create_app(conf)
    async with asgi_client(app, base_url="http://a.test") as client:
        leak = body(hosts=["connect.facebook.net", "cdn.example.org"])
        # Sent to a.test claiming to come from b.test's pages, or with b.test's Host from a.test: refused.
        assert (await post(client, content=leak, headers={"origin": "http://b.test"} | TEXT)).status_code == 403
        assert (
            await post(client, content=leak, headers={"host": "b.test", "origin": "http://a.test"} | TEXT)
        ).status_code == 403
        assert (await post(client, content=leak, headers={"origin": "http://a.test"} | TEXT)).status_code == 204
        a = await report(app, client, "a.test")
        b = await report(app, client, "b.test")
    assert a["totals"]["beacons"] == 1 and a["totals"]["field_leaks"] == 1
    assert b["totals"]["beacons"] == 0 and b["totals"]["field_leaks"] == 0
    assert [f["subject"] for f in b["findings"]] == ["beacon:origin"]  # only the refusal is counted


# -- the script -------------------------------------------------------------------------------------------
async def test_rewritten_pages_carry_the_beacon_script(app):
    async with asgi_client(app) as client:
        page = await client.get("/jobs/dh-001")
        script = await client.get(beacon.SCRIPT_URL)
    assert f'src="http://gate.test{beacon.SCRIPT_URL}"' in page.text
    assert script.status_code == 200 and "immutable" in script.headers["cache-control"]
    text = script.text
    assert "sendBeacon" in text and "PerformanceObserver" in text and "/_gate/beacon" in text
    assert "document.cookie" not in text and "location.search" not in text  # nothing about the visitor
    assert len(script.content) < 2048


def urls_body(urls: list[str], page: str = "/jobs/dh-001") -> bytes:
    return json.dumps({"v": 2, "page": page, "urls": urls}).encode()


def fired(data: dict, tag_id: str) -> int:
    return next((r["fired"] for r in data["tags"] if r["tag"] == tag_id), 0)


async def test_a_contacted_url_counts_for_the_one_tag_it_belongs_to(app):
    """Not for every tag of the vendor whose host it is: Yahoo's conversion tag fired, its Tag Manager
    did not; Google Ads fired, Floodlight did not."""
    async with asgi_client(app) as client:
        client.cookies.update(consent_cookie(app, ["improvement", "advertising", "suggestions"]))
        r = await post(
            client,
            content=urls_body(
                [
                    "//s.yimg.jp/images/listing/tool/cv/ytag.js",
                    "//b97.yahoo.co.jp/pagead/conversion/1001/",
                    "//googleads.g.doubleclick.net/pagead/viewthroughconversion/123/",
                ]
            ),
            headers=SELF | TEXT,
        )
        assert r.status_code == 204
        data = await report(app, client)
    assert fired(data, "yahoo.ads") == 1 and fired(data, "google.ads") == 1
    assert fired(data, "yahoo.tag_manager") == fired(data, "yahoo.retargeting") == fired(data, "google.floodlight") == 0
    assert not data["findings"]


@pytest.mark.parametrize(
    ("url", "tag_id"),
    [
        ("//www.googletagmanager.com/gtag/js?id=G-ABC123", "google.analytics"),
        ("//www.googletagmanager.com/gtag/js?id=AW-123456", "google.ads"),
        ("//www.googletagmanager.com/gtm.js?id=GTM-ABC12", "google.tag_manager"),
        ("//region1.google-analytics.com/g/collect", "google.analytics"),
    ],
    ids=["gtag-for-ga4", "gtag-for-ads", "gtm", "ga4-collect"],
)
def test_attribution_names_the_tag_the_url_belongs_to(url, tag_id):
    registry = load()
    contacts = Attribution(registry).attribute([url], frozenset(registry.tags), "gate.test")
    assert contacts.fired == {tag_id} and not contacts.leaked and not contacts.unattributed


async def test_a_host_several_tags_could_have_contacted_is_reported_not_credited_to_all(app):
    """A version 1 beacon names hosts only: s.yimg.jp serves every Yahoo tag, so it counts for none."""
    async with asgi_client(app) as client:
        client.cookies.update(consent_cookie(app, ["improvement", "advertising", "suggestions"]))
        await post(client, content=body(hosts=["s.yimg.jp"]), headers=SELF | TEXT)
        data = await report(app, client)
    assert fired(data, "yahoo.ads") == fired(data, "yahoo.tag_manager") == fired(data, "yahoo.retargeting") == 0
    assert set(findings(data, "unattributed_host")) == {"s.yimg.jp"}
    assert data["totals"]["field_leaks"] == 0


async def test_a_refused_vendor_host_is_a_leak_even_when_no_single_tag_explains_it(app):
    async with asgi_client(app) as client:  # undecided: everything refused
        await post(client, content=urls_body(["//s.yimg.jp/favicon.ico"]), headers=SELF | TEXT)
        data = await report(app, client)
    assert {"yahoo.ads", "yahoo.tag_manager"} <= set(findings(data, "leak"))


@pytest.mark.parametrize(
    "urls",
    [
        ["https://connect.facebook.net/x"],
        ["//connect.facebook.net/tr?ud[em]=abc"],
        ["//bad host/x"],
        [3],
        ["//connect.facebook.net/" + "x" * 101],
    ],
    ids=["absolute", "query-beyond-id", "bad-host", "not-a-string", "path-too-long"],
)
async def test_bad_url_beacons_are_refused(app, urls):
    async with asgi_client(app) as client:
        r = await post(client, content=urls_body(urls), headers=SELF | TEXT)
        assert r.status_code == 400
