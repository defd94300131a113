"""Issue 11.4: the notice and the banner say everything, and say it right: an opt-out link per tag,
the site's own additions to what is sent, purposes named in the first layer, 「利用者へのサービスの提案」
covering Criteo's and Yahoo's retargeting, a glossary, opt-out switches ticked for what is sent now,
withdrawal expiring every Google ad cookie and clearing what vendors keep outside cookies, and 位置情報
only where a tag sends location."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gate import app as gate_app
from gate import expiry, vendors
from gate.banner import render_banner
from gate.consent import COOKIE_NAME, undecided
from gate.settings import Site

from .conftest import asgi_client, gate_settings, policy_registry

pytestmark = pytest.mark.anyio
ORIGIN = "http://origin.test"
SELF = {"origin": "http://gate.test"}
REGISTRY = policy_registry()
CARRIED = REGISTRY.carried(None, None)


def make_app(**site):
    return gate_app.create_app(gate_settings(ORIGIN, sites=(Site(upstream=ORIGIN, **site),)))


async def notice_json(app, lang: str = "ja") -> dict:
    async with asgi_client(app) as client:
        return (await client.get(f"/_gate/notice?format=json&gate_lang={lang}")).json()


def banner(consent=None, lang="ja", registry=REGISTRY, carried=CARRIED) -> str:
    return render_banner(
        registry,
        consent or undecided(registry),
        lang=lang,
        next_path="/",
        policy_url="/privacy",
        carried=carried,
        origin="https://jobs.example.jp",
    )


async def test_every_tag_links_to_its_own_opt_out_ads_to_googles_ad_settings():
    rows = {r["tag"]: r["optout_url"] for r in (await notice_json(make_app()))["rows"]}
    assert rows["google.analytics"].startswith("https://tools.google.com/dlpage/gaoptout")
    for tag in ("google.ads", "google.floodlight", "google.tag_manager"):
        assert rows[tag].startswith("https://myadcenter.google.com/"), tag
    assert rows["facebook.pixel"] == "https://www.facebook.com/adpreferences/"


async def test_the_site_adds_to_what_is_sent_and_a_consent_before_it_is_asked_again():
    before = make_app()
    async with asgi_client(before) as client:
        cookie = (
            await client.post(
                "/_gate/consent",
                content="choice=accept_all",
                headers=SELF | {"content-type": "application/x-www-form-urlencoded"},
            )
        ).cookies[COOKIE_NAME]
    app = make_app(
        information={"google.analytics": ["閲覧した求人のIDとタイトル"]},
        information_en={"google.analytics": ["id and title of the job viewed"]},
        tag_cookies={"google.analytics": ["_ga_site"]},
    )
    rows = {r["tag"]: r for r in (await notice_json(app))["rows"]}
    assert rows["google.analytics"]["information"][-1] == "閲覧した求人のIDとタイトル"
    assert {r["tag"]: r for r in (await notice_json(app, "en"))["rows"]}["google.analytics"]["information"][
        -1
    ] == "id and title of the job viewed"
    assert app.state.gate.registries[None].tags["google.analytics"].cookie_matches("_ga_site")
    read = app.state.gate.codec.read(cookie, app.state.gate.registries[None])
    assert read.renewing and "google.analytics" not in read.covered and "google.ads" in read.covered


def test_the_first_layer_names_each_purpose_and_the_settings_layer_summarises_it():
    html = banner()
    first = html[: html.index('id="gate-panel"')]
    lines = re.findall(r'<ul data-gate class="gate-purposes">(.*?)</ul>', first)[0]
    assert re.findall(r"<li data-gate>(.*?)</li>", lines) == [
        "商品・サービスの開発および改善",
        "コンテンツ・広告の配信および提供",
        "利用者へのサービスの提案",
    ]
    panel = html[html.index('id="gate-panel"') :]
    suggestions = re.search(r'<p data-gate id="gate-m-suggestions" class="gate-who">(.*?)</p>', panel).group(1)
    assert "Criteo" in suggestions and "Yahoo!広告" in suggestions and "リターゲティング広告" in suggestions
    assert 'id="gate-m-improvement"' in panel and 'id="gate-m-advertising"' in panel


async def test_the_notice_explains_its_jargon():
    async with asgi_client(make_app()) as client:
        text = (await client.get("/_gate/notice")).text
    glossary = text[text.index('id="glossary"') :]
    for term in ("コンバージョン", "リマーケティング", "アトリビューション", "コンテナID"):
        assert f"<dt data-gate>{term}" in glossary, term


def test_opt_out_switches_show_what_is_sent_now():
    def ticked(consent) -> list[str]:
        return re.findall(r'name="purposes" value="([a-z]+)" checked', banner(consent))

    assert ticked(undecided(REGISTRY, opt_out_mode=True)) == ["improvement", "advertising", "suggestions"]
    assert ticked(undecided(REGISTRY, opt_out_mode=True, gpc=True)) == ["improvement"]
    assert ticked(undecided(REGISTRY)) == []  # opt-in: nothing ticked before the visitor chooses


async def test_withdrawal_expires_every_google_ad_cookie():
    app = make_app()
    sent = "_gcl_au=1; _gcl_gf=1; _gcl_ha=1; _gac_UA-1=1; _gac_gb_1=1"
    async with asgi_client(app) as client:
        r = await client.delete("/_gate/consent", headers=SELF | {"cookie": sent})
    expired = {line.split("=", 1)[0] for line in r.headers.get_list("set-cookie")}
    assert {"_gcl_au", "_gcl_gf", "_gcl_ha", "_gac_UA-1", "_gac_gb_1"} <= expired


def test_what_vendors_keep_outside_cookies_is_cleared_while_they_are_refused():
    site = REGISTRY.for_site(CARRIED, "")
    script = expiry.storage_script(site, frozenset())
    assert '"localStorage:cto_bundle"' in script and '"indexedDB:adjust-sdk"' in script
    assert expiry.storage_script(site, frozenset(CARRIED)) == ""
    criteo_only = REGISTRY.for_site({"criteo.onetag"}, "")
    assert "adjust" not in expiry.storage_script(criteo_only, frozenset())  # only what the site carries


def test_a_bad_storage_entry_is_refused_at_start_up():
    raw = vendors.tomllib.loads(vendors.DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["vendors"]["criteo"]["tags"][0]["storage"] = ["cookie:cto_bundle"]
    with pytest.raises(vendors.ConfigError, match="storage"):
        vendors.parse(raw)


def test_the_banner_says_location_only_when_a_tag_sends_it():
    assert "位置情報" not in banner() and "location" not in banner(lang="en")
    tags = dict(REGISTRY.tags)
    tags["yahoo.ads"] = dataclasses.replace(tags["yahoo.ads"], location=True)
    located = vendors.build(REGISTRY.purposes, REGISTRY.vendors, tags, None)
    assert "位置情報" in banner(registry=located)
    assert "位置情報" not in banner(registry=located, carried=frozenset({"google.analytics"}))
