"""/_gate/preferences and /_gate/notice through a minimal Starlette app, read with html5lib."""

from __future__ import annotations

import dataclasses
import time
import warnings

import pytest
from bs4 import BeautifulSoup
from starlette.applications import Starlette
from starlette.routing import Route

from gate import consent, pages, settings
from gate.app import create_app
from gate.settings import Site

from .conftest import policy_registry

with warnings.catch_warnings():  # starlette asks for httpx2; the venv has httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

REGISTRY = policy_registry()
ALL_TAGS = list(REGISTRY.tags)


def make_client(sites: tuple[Site, ...] | None = None, cookie: consent.Consent | None = None) -> TestClient:
    s = settings.load({}, {})
    if sites is not None:
        s = dataclasses.replace(s, sites=sites)
    app = Starlette(routes=[Route("/_gate/preferences", pages.preferences), Route("/_gate/notice", pages.notice)])
    app.state.gate = create_app(s).state.gate  # the typed state; its registries replaced below
    app.state.gate.registry = REGISTRY
    app.state.gate.registries = {site.host: REGISTRY.with_tag_purposes(site.tag_purposes) for site in s.sites}
    app.state.gate.carried = {
        site.host: app.state.gate.registries[site.host].carried(site.vendors, site.tags) for site in s.sites
    }
    app.state.gate.codec = consent.ConsentCodec(s.secret_keys)
    client = TestClient(app)
    if cookie is not None:
        client.cookies.set(consent.COOKIE_NAME, app.state.gate.codec.dumps(cookie))
    return client


def soup(response) -> BeautifulSoup:
    assert response.status_code == 200, response.text
    return BeautifulSoup(response.text, "html5lib")


def rows(page: BeautifulSoup) -> list:
    return page.find("tbody").find_all("tr")


def cell(row, label: str):
    return row.find("td", attrs={"data-label": label})


# -- notice ---------------------------------------------------------------------------------------
def test_notice_has_one_row_per_carried_tag():
    page = soup(make_client().get("/_gate/notice"))
    assert [r["id"] for r in rows(page)] == ALL_TAGS
    narrow = (Site(upstream="demo", vendors=("google", "criteo"), tags=("google.analytics", "criteo.onetag")),)
    page = soup(make_client(narrow).get("/_gate/notice"))
    assert [r["id"] for r in rows(page)] == ["google.analytics", "criteo.onetag"]


def test_notice_row_names_recipient_contact_service_and_links():
    row = soup(make_client().get("/_gate/notice")).find("tr", id="facebook.pixel")
    assert row.th.get_text() == "Meta ピクセル"
    recipient = cell(row, "送信先（取扱者）").get_text(" ")
    assert "Meta Platforms, Inc." in recipient and "Facebook Japan合同会社" in recipient
    assert "コンテンツ・広告の配信および提供" in cell(row, "このサイトの利用目的").get_text()
    assert "Facebook・Instagram" in cell(row, "送信先での利用目的").get_text()
    hrefs = [a["href"] for a in cell(row, "送信先のポリシー").find_all("a")]
    assert hrefs == ["https://www.facebook.com/privacy/policy/", "https://www.facebook.com/adpreferences/"]


def test_information_is_listed_specifically():
    for row in rows(soup(make_client().get("/_gate/notice"))):
        items = [li.get_text() for li in cell(row, "送信される情報").find_all("li")]
        assert items, row["id"]
        assert not any("等" in i or "その他" in i or "など" in i for i in items), (row["id"], items)


def test_json_has_the_same_rows():
    client = make_client()
    html_rows = rows(soup(client.get("/_gate/notice")))
    data = client.get("/_gate/notice?format=json").json()
    assert data["mode"] == "opt-in" and data["decided"] is False and data["policy_version"] == REGISTRY.version
    assert [r["tag"] for r in data["rows"]] == [r["id"] for r in html_rows]
    for row, html_row in zip(data["rows"], html_rows, strict=True):
        assert row["information"] == [li.get_text() for li in cell(html_row, "送信される情報").find_all("li")]
        assert row["service"] == html_row.th.get_text()


@pytest.mark.parametrize(
    "cookie,allowed",
    [
        (None, set()),
        (consent.decide(REGISTRY, ["improvement"]), {"google.analytics"}),
        (
            consent.decide(REGISTRY, ["improvement", "advertising"]),
            {
                "google.analytics",
                "google.ads",
                "google.floodlight",
                "google.tag_manager",
                "yahoo.ads",
                "yahoo.tag_manager",
                "adjust.web_sdk",
                "facebook.pixel",
            },
        ),
        (
            consent.decide(REGISTRY, REGISTRY.refusable, vendors_refused=["google", "yahoo"]),
            {"criteo.onetag", "adjust.web_sdk", "facebook.pixel", "facebook.catalogue"},
        ),
    ],
    ids=["undecided", "improvement-only", "no-suggestions", "google-yahoo-refused"],
)
def test_allowed_flag_follows_consent(cookie, allowed):
    client = make_client(cookie=cookie)
    data = client.get("/_gate/notice?format=json").json()
    assert {r["tag"] for r in data["rows"] if r["allowed"]} == allowed
    page = soup(client.get("/_gate/notice"))
    sent = {r["id"] for r in rows(page) if cell(r, "あなたの設定").get_text() == "送信する"}
    assert sent == allowed


def test_notice_states_the_mode():
    opt_in = soup(make_client().get("/_gate/notice")).find(class_="gate-note").get_text()
    assert "同意するまで" in opt_in
    opt_out_client = make_client((Site(upstream="demo", mode="opt-out"),))
    note = soup(opt_out_client.get("/_gate/notice")).find(class_="gate-note")
    assert "オプトアウト方式" in note.get_text() and note.a["href"].startswith("/_gate/preferences")
    data = opt_out_client.get("/_gate/notice?format=json").json()
    assert data["mode"] == "opt-out" and all(r["allowed"] for r in data["rows"])
    gpc = opt_out_client.get("/_gate/notice?format=json", headers={"Sec-GPC": "1"}).json()
    assert {r["tag"] for r in gpc["rows"] if r["allowed"]} == {"google.analytics"}  # GPC: no ads, no suggestions


@pytest.mark.parametrize(
    "query,headers",
    [("?gate_lang=en", {}), ("", {"Accept-Language": "en-US,en;q=0.9"})],
    ids=["query", "accept-language"],
)
def test_notice_in_english(query, headers):
    client = make_client()
    page = soup(client.get("/_gate/notice" + query, headers=headers))
    assert page.html["lang"] == "en" and page.h1.get_text() == "Data sent to other companies"
    row = page.find("tr", id="google.analytics")
    assert "Google Japan G.K." in cell(row, "Recipient").get_text()
    json_url = "/_gate/notice" + (query + "&" if query else "?") + "format=json"
    assert client.get(json_url, headers=headers).json()["rows"][0]["service"] == "Google Analytics"


def test_notice_is_a_readable_page():
    response = make_client().get("/_gate/notice")
    page = soup(response)
    assert page.find("meta", attrs={"name": "viewport"})["content"].startswith("width=device-width")
    assert [link["href"].split("?")[0] for link in page.find_all("link")] == [
        "/_gate/static/gate.css",
        "/_gate/static/pages.css",
    ]
    assert not page.find("script") and response.headers["cache-control"] == "no-store"
    assert all(th["scope"] == "col" for th in page.thead.find_all("th"))


def test_unknown_host_is_421():
    client = make_client((Site(upstream="demo", host="jobs.example"),))
    response = client.get("/_gate/notice", headers={"Host": "other.example"})
    assert response.status_code == 421 and "Misdirected" in response.text
    assert client.get("/_gate/notice", headers={"Host": "jobs.example"}).status_code == 200


# -- preferences ----------------------------------------------------------------------------------
def form(page: BeautifulSoup):
    f = page.find("form")
    assert f["method"] == "post" and f["action"] == "/_gate/consent"
    return f


def checked(f, name: str) -> list[str]:
    return [i["value"] for i in f.find_all("input", attrs={"name": name}) if i.has_attr("checked")]


def test_preferences_is_a_plain_form():
    f = form(soup(make_client().get("/_gate/preferences?next=/jobs%3Fid%3D3")))
    assert f.find("input", attrs={"name": "next"})["value"] == "/jobs?id=3"
    assert f.find("input", attrs={"name": "source"})["value"] == "page"
    assert [b["value"] for b in f.find_all("button")] == ["custom", "accept_all", "reject_all", "withdraw"]
    assert {b["name"] for b in f.find_all("button")} == {"choice"}
    assert [i["value"] for i in f.find_all("input", attrs={"name": "purposes"})] == [
        "improvement",
        "advertising",
        "suggestions",
    ]
    assert [i["value"] for i in f.find_all("input", attrs={"name": "refuse_vendor"})] == list(REGISTRY.vendors)
    security = f.find("input", attrs={"disabled": True})
    assert security.has_attr("checked") and "常に有効" in security.parent.get_text()


def test_preferences_undecided():
    page = soup(make_client().get("/_gate/preferences"))
    assert "まだ選択していません" in page.get_text()
    assert checked(form(page), "purposes") == [] and checked(form(page), "refuse_vendor") == []
    assert form(page).find("input", attrs={"name": "next"})["value"] == "/"


def test_preferences_reflects_the_current_choice():
    # Today 00:00 UTC: a fixed date would soon be older than the re-consent age and read as undecided.
    midnight = int(time.time()) // 86400 * 86400
    cookie = consent.decide(
        REGISTRY, ["improvement", "suggestions"], vendors_refused=["criteo"], method="page", now=midnight
    )
    page = soup(make_client(cookie=cookie).get("/_gate/preferences"))
    f = form(page)
    assert checked(f, "purposes") == ["improvement", "suggestions"]
    assert checked(f, "refuse_vendor") == ["criteo"]
    text = page.get_text()
    assert time.strftime("%Y年%m月%d日 09:00（日本時間）", time.gmtime(midnight)) in text and "この設定ページ" in text
    assert page.find("code").get_text() == cookie.consent_id


CONSENT_ID_TEXT = {  # lang: (label, the hint while receipts are recorded, the hint with store = "off")
    "ja": ("同意ID：", "運営者は、このIDであなたの選択の記録を確認できます", "お問い合わせの際にお伝えください"),
    "en": ("Consent ID: ", "the site's operator can look up the record of your choice", "quote it if you contact us"),
}


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("recording", [True, False], ids=["recording", "store-off"])
def test_preferences_shows_the_consent_id_its_receipt_is_filed_under(lang, recording):
    cookie = consent.decide(REGISTRY, ["improvement"], method="banner")
    client = make_client(cookie=cookie)
    if recording:
        client.app.state.gate.recorder = object()  # the page only asks whether receipts are being kept
    line = soup(client.get("/_gate/preferences", params={"gate_lang": lang})).find("p", class_="gate-consent-id")
    label, receipt_hint, contact_hint = CONSENT_ID_TEXT[lang]
    assert line.code.get_text() == cookie.consent_id and len(cookie.consent_id) >= 16
    assert line.get_text().startswith(label + cookie.consent_id)
    assert (receipt_hint in line.get_text()) is recording  # never promise a record that is not kept
    assert contact_hint in line.get_text()

    undecided = soup(make_client().get("/_gate/preferences", params={"gate_lang": lang}))
    assert undecided.find("p", class_="gate-consent-id") is None and not undecided.find("code")


def test_preferences_opt_out_mode_shows_what_is_sent_and_no_withdraw():
    client = make_client((Site(upstream="demo", mode="opt-out"),))
    f = form(soup(client.get("/_gate/preferences")))
    assert checked(f, "purposes") == ["improvement", "advertising", "suggestions"]
    assert "withdraw" not in [b["value"] for b in f.find_all("button")]
    f = form(soup(client.get("/_gate/preferences", headers={"Sec-GPC": "1"})))
    assert checked(f, "purposes") == ["improvement"]


@pytest.mark.parametrize(
    "raw", ['"><script>alert(1)</script>', "//evil.example/", "https://evil.example/", "/\\evil.example", ""]
)
def test_preferences_next_is_a_same_origin_path(raw):
    page = soup(make_client().get("/_gate/preferences", params={"next": raw}))
    assert form(page).find("input", attrs={"name": "next"})["value"] == "/"
    assert not page.find("script")


def test_preferences_escapes_a_path_next():
    raw = '/jobs?q="><script>alert(1)</script>'
    page = soup(make_client().get("/_gate/preferences", params={"next": raw}))
    assert form(page).find("input", attrs={"name": "next"})["value"] == raw and not page.find("script")


def test_preferences_in_english_with_a_language_switch():
    page = soup(make_client().get("/_gate/preferences", params={"gate_lang": "en", "next": "/a"}))
    assert page.html["lang"] == "en" and page.h1.get_text() == "Cookie settings"
    switch = page.find("a", string="日本語")["href"]
    assert switch.startswith("/_gate/preferences?") and "gate_lang=ja" in switch and "next=%2Fa" in switch


# -- error page -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [502, 504, 421, 500])
def test_error_page_speaks_both_languages(status):
    page = BeautifulSoup(pages.error_page(status, "en"), "html5lib")
    assert page.html["lang"] == "en" and str(status) in page.title.get_text()
    assert [p["lang"] for p in page.find_all("p")] == ["en", "ja"]
    assert BeautifulSoup(pages.error_page(status), "html5lib").html["lang"] == "ja"
