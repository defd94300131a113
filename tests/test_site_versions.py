"""Issue 11.1: a consent is given under a per-site version. What the site carries and says makes the
version; a decision covers the tags it was given for, and a tag it did not cover (a new recipient, a
widened purpose) is undecided: stripped in opt-in mode, and named by the banner that asks again."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import banner, vendors
from gate.consent import COOKIE_NAME
from gate.settings import Site

from .conftest import asgi_client, gate_settings

pytestmark = pytest.mark.anyio
ORIGIN = "http://origin.test"
SELF = {"origin": "http://gate.test"}
FORM = {"content-type": "application/x-www-form-urlencoded"} | SELF
PAGE = (
    "<!doctype html><html><head>"
    "<script async src='https://www.googletagmanager.com/gtag/js?id=G-ABC123'></script>"
    "<script src='https://static.criteo.net/js/ld/ld.js'></script>"
    "<script src='https://connect.facebook.net/en_US/fbevents.js'></script>"
    "</head><body><p>求人</p></body></html>"
).encode()


def make_app(**site):
    return gate_app.create_app(gate_settings(ORIGIN, sites=(Site(upstream=ORIGIN, **site),)))


async def decide_on(app, choice: str = "accept_all") -> str:
    async with asgi_client(app) as client:
        r = await client.post("/_gate/consent", content=f"choice={choice}", headers=FORM)
    return r.cookies[COOKIE_NAME]


async def page(app, cookie: str, path: str = "/jobs", **headers) -> httpx.Response:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=PAGE)
        )
        async with asgi_client(app) as client:
            return await client.get(path, headers={"cookie": f"{COOKIE_NAME}={cookie}"} | headers)


def tags(response: httpx.Response) -> tuple[set[str], set[str]]:
    kept, stripped = (
        set(filter(None, part.split("=", 1)[1].split(","))) for part in response.headers["gate-tags"].split("; ")[:2]
    )
    return kept, stripped


async def test_an_accept_all_given_when_the_site_carried_only_google_does_not_reach_criteo_or_meta():
    cookie = await decide_on(make_app(vendors=("google",)))
    r = await page(make_app(vendors=("google", "criteo", "facebook")), cookie)
    kept, stripped = tags(r)
    assert "google.analytics" in kept
    assert {"criteo.onetag", "facebook.pixel"} <= stripped
    assert "static.criteo.net" not in r.text and "connect.facebook.net" not in r.text
    assert "googletagmanager.com/gtag/js" in r.text  # what the decision covered still runs
    new = re.search(r'<p data-gate class="gate-new">(.*?)</p>', r.text).group(1)
    assert "Criteo SA" in new and "Meta Platforms, Inc." in new and "Google" not in new


async def test_the_banner_names_what_is_new_in_english_too():
    cookie = await decide_on(make_app(vendors=("google",)))
    r = await page(make_app(vendors=("google", "criteo")), cookie, "/?gate_lang=en")
    new = banner.text_of(re.search(r'<p data-gate class="gate-new">.*?</p>', r.text).group(0))
    assert new.startswith("Since your last choice") and "Criteo SA (Criteo OneTag (retargeting ads))" in new


async def test_answering_again_covers_the_new_tags_and_keeps_the_consent_id():
    old = make_app(vendors=("google",))
    cookie = await decide_on(old)
    new_app = make_app(vendors=("google", "criteo"))
    async with asgi_client(new_app) as client:
        r = await client.post(
            "/_gate/consent", content="choice=accept_all", headers=FORM | {"cookie": f"{COOKIE_NAME}={cookie}"}
        )
    again = r.cookies[COOKIE_NAME]
    read = lambda app, c: app.state.gate.codec.read(c, app.state.gate.registries[None])
    assert read(new_app, again).consent_id == read(old, cookie).consent_id
    kept, _ = tags(await page(new_app, again))
    assert "criteo.onetag" in kept


async def test_a_widened_purpose_asks_again_for_that_tag_only():
    cookie = await decide_on(make_app(vendors=("google",)), "custom&purposes=improvement&purposes=advertising")
    widened = make_app(vendors=("google",), tag_purposes={"google.analytics": ["improvement", "advertising"]})
    r = await page(widened, cookie)
    kept, stripped = tags(r)
    assert "google.analytics" in stripped and "google.ads" in kept
    assert "Google アナリティクス" in re.search(r'class="gate-new">(.*?)</p>', r.text).group(1)


async def test_removing_a_recipient_keeps_the_decision_and_shows_no_banner():
    cookie = await decide_on(make_app(vendors=("google", "criteo")))
    smaller = make_app(vendors=("google",))
    r = await page(smaller, cookie)
    assert 'id="gate-banner"' not in r.text and "google.analytics" in tags(r)[0]
    assert smaller.state.gate.codec.read(cookie, smaller.state.gate.registries[None]).decided


async def test_new_wording_is_a_new_version_but_keeps_the_decision(monkeypatch):
    app = make_app(vendors=("google",))
    cookie = await decide_on(app)
    monkeypatch.setitem(banner.TEXT["ja"], "accept", "すべてに同意する")
    reworded = make_app(vendors=("google",))
    assert reworded.state.gate.registries[None].version != app.state.gate.registries[None].version
    read = reworded.state.gate.codec.read(cookie, reworded.state.gate.registries[None])
    assert read.decided and read.version == app.state.gate.registries[None].version


async def test_a_vendor_the_site_does_not_carry_leaves_its_version_alone(tmp_path: Path):
    extra = (
        vendors.DEFAULT_PATH.read_text(encoding="utf-8")
        + '\n[vendors.other]\nrecipient = "Other Inc."\ndomains = ["other.example"]\n'
        '[[vendors.other.tags]]\nid = "other.pixel"\nservice_ja = "x"\nservice_en = "x"\n'
        'purposes = ["advertising"]\nhosts = ["other.example"]\n'
    )
    path = tmp_path / "vendors.toml"
    path.write_text(extra, encoding="utf-8")
    site = Site(upstream=ORIGIN, vendors=("google",))
    before = gate_app.create_app(gate_settings(ORIGIN, sites=(site,)))
    after = gate_app.create_app(gate_settings(ORIGIN, sites=(site,), vendors_path=str(path)))
    assert after.state.gate.registries[None].version == before.state.gate.registries[None].version
    two = dataclasses.replace(site, host="b.test")
    sites = gate_app.create_app(gate_settings(ORIGIN, sites=(site, dataclasses.replace(two, vendors=("criteo",)))))
    assert sites.state.gate.registries[None].version != sites.state.gate.registries["b.test"].version


async def test_opt_out_mode_keeps_an_earlier_refusal_for_new_tags():
    cookie = await decide_on(make_app(vendors=("google",), mode="opt-out"), "custom&purposes=improvement")
    r = await page(make_app(vendors=("google", "criteo", "adjust"), mode="opt-out"), cookie)
    kept, stripped = tags(r)
    assert "criteo.onetag" in stripped  # advertising was refused before: still refused
    assert "google.analytics" in kept
    assert 'class="gate-new"' in r.text


async def test_a_tampered_coverage_cannot_claim_a_new_tag():
    cookie = await decide_on(make_app(vendors=("google",)))
    app = make_app(vendors=("google", "criteo"))
    registry = app.state.gate.registries[None]
    read = app.state.gate.codec.read(cookie, registry)
    forged = app.state.gate.codec.dumps(
        dataclasses.replace(read, coverage={**read.coverage, "criteo.onetag": "00000000"})
    )
    assert "criteo.onetag" in tags(await page(app, forged))[1]
