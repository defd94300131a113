"""Issue 11.3: personal data on application forms. On a page with a form asking for a name, an e-mail
address or a phone number (configured in form_paths, or found by gate while reading the page) the tags
that can read forms run only for recipients the visitor separately agreed may receive personal data;
that consent is its own line in the settings layer and the receipts, never part of "accept all". The
notice states each recipient's country and, for those abroad, what APPI art. 28 asks for."""

from __future__ import annotations

import re

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import vendors
from gate.consent import COOKIE_NAME
from gate.errors import ConfigError
from gate.settings import Site

from .conftest import asgi_client, gate_settings

pytestmark = pytest.mark.anyio
ORIGIN = "http://origin.test"
FORM = {"content-type": "application/x-www-form-urlencoded", "origin": "http://gate.test"}
HEAD = (
    "<!doctype html><html><head>"
    "<script async src='https://www.googletagmanager.com/gtag/js?id=G-ABC123'></script>"
    "<script src='https://static.criteo.net/js/ld/ld.js'></script></head><body>"
)
FBQ = "<script src='https://connect.facebook.net/en_US/fbevents.js'></script>"
APPLY = (
    HEAD + "<form method=post><label>氏名 <input name=applicant_name></label>"
    "<label>メール <input type=email name=mail></label></form>" + FBQ + "</body></html>"
).encode()
PLAIN = (HEAD + "<p>求人一覧</p>" + FBQ + "</body></html>").encode()
READERS = {"google.analytics", "google.ads", "google.tag_manager", "facebook.pixel"}


def make_app(**site):
    return gate_app.create_app(gate_settings(ORIGIN, sites=(Site(upstream=ORIGIN, **site),)))


async def decide_on(app, body: str) -> str:
    async with asgi_client(app) as client:
        r = await client.post("/_gate/consent", content=body, headers=FORM)
    return r.cookies[COOKIE_NAME]


async def visit(app, cookie: str, *paths: str) -> list[httpx.Response]:
    def page(request: httpx.Request) -> httpx.Response:
        body = APPLY if "apply" in request.url.path else PLAIN
        return httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=body)

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(side_effect=page)
        async with asgi_client(app) as client:
            return [await client.get(p, headers={"cookie": f"{COOKIE_NAME}={cookie}"}) for p in paths]


def kept(r: httpx.Response) -> set[str]:
    return set(filter(None, r.headers["gate-tags"].split("; ")[0].removeprefix("kept=").split(",")))


async def test_on_a_configured_form_path_accept_all_does_not_let_form_readers_run():
    app = make_app(form_paths=("/jobs/*/apply",))
    cookie = await decide_on(app, "choice=accept_all&personal_data=facebook&personal_data=google")
    jobs, form = await visit(app, cookie, "/jobs", "/jobs/dh-001/apply")
    assert READERS <= kept(jobs)
    assert kept(form) & READERS == set() and "criteo.onetag" in kept(form)
    assert "googletagmanager.com" not in form.text and "connect.facebook.net" not in form.text
    assert "static.criteo.net" in form.text


async def test_a_form_found_while_reading_strips_readers_after_it_and_the_path_is_remembered():
    app = make_app()
    cookie = await decide_on(app, "choice=accept_all")
    first, second, other = await visit(app, cookie, "/apply", "/apply", "/jobs")
    assert "connect.facebook.net" not in first.text  # after the form: stripped as it was read
    assert "googletagmanager.com/gtag/js" in first.text  # before it: already gone to the browser
    assert kept(second) & READERS == set() and "googletagmanager.com" not in second.text
    assert READERS <= kept(other)


async def test_a_separate_personal_data_consent_lets_only_that_recipient_read_forms():
    app = make_app(form_paths=("/apply",))
    cookie = await decide_on(
        app, "choice=custom&purposes=improvement&purposes=advertising&purposes=suggestions&personal_data=facebook"
    )
    [form] = await visit(app, cookie, "/apply")
    assert "facebook.pixel" in kept(form) and "connect.facebook.net" in form.text
    assert kept(form) & {"google.analytics", "google.ads", "google.tag_manager"} == set()
    read = app.state.gate.codec.read(cookie, app.state.gate.registries[None])
    assert read.personal_data == {"facebook"}


async def test_the_settings_layer_has_one_personal_data_line_per_recipient_that_reads_forms():
    app = make_app()
    [page] = await visit(app, "", "/jobs")
    panel = page.text[page.text.index('id="gate-panel"') :]
    lines = re.findall(r'name="personal_data" value="([a-z]+)"', panel)
    assert lines == ["google", "facebook"]
    assert "Meta Platforms, Inc.（アメリカ合衆国）への提供に同意する" in panel
    assert "「すべて同意」には含まれません" in panel
    async with asgi_client(app) as client:
        prefs = (await client.get("/_gate/preferences")).text
    assert re.findall(r'name="personal_data" value="([a-z]+)"', prefs) == ["google", "facebook"]


async def test_the_notice_states_each_recipients_country_and_art_28_for_those_abroad():
    app = make_app()
    async with asgi_client(app) as client:
        text = (await client.get("/_gate/notice")).text
        data = (await client.get("/_gate/notice?format=json")).json()
    assert {r["vendor"]: r["country"] for r in data["rows"]} == {
        "google": "US",
        "yahoo": "JP",
        "criteo": "FR",
        "adjust": "DE",
        "facebook": "US",
    }
    abroad = text[text.index("外国にある送信先") :]
    for vendor, country in (("google", "アメリカ合衆国"), ("criteo", "フランス"), ("facebook", "アメリカ合衆国")):
        item = re.search(rf'<li data-gate id="abroad-{vendor}">(.*?)</li>', abroad).group(1)
        assert country in item and "その国の制度：" in item and "送信先の措置：" in item
    assert 'id="abroad-yahoo"' not in abroad  # LINEヤフー is in Japan
    assert "所在国：日本" in text


def test_a_recipient_abroad_without_its_regime_is_refused_at_start_up():
    raw = vendors.tomllib.loads(vendors.DEFAULT_PATH.read_text(encoding="utf-8"))
    del raw["vendors"]["criteo"]["regime_ja"]
    with pytest.raises(ConfigError, match="vendors.criteo.regime_ja"):
        vendors.parse(raw)


async def test_receipts_record_the_personal_data_consent_on_its_own_line(tmp_path):
    from .store_support import recording_app

    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        a = await client.post("/_gate/consent", content="choice=accept_all&personal_data=google", headers=FORM)
        client.cookies.clear()  # another visitor
        b = await client.post(
            "/_gate/consent", content="choice=custom&purposes=advertising&personal_data=google", headers=FORM
        )
        assert await app.state.gate.recorder.flush()
        read = lambda r: app.state.gate.codec.read(r.cookies[COOKIE_NAME], app.state.gate.registries[None])
        [ra] = app.state.gate.recorder.store.receipts_for(read(a).consent_id)
        [rb] = app.state.gate.recorder.store.receipts_for(read(b).consent_id)
    assert (ra.choice, ra.personal_data) == ("accept_all", "")
    assert (rb.choice, rb.personal_data) == ("custom", "google")
