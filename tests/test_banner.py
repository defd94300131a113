"""The banner as a browser would read it (html5lib), its static files, and what it costs."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from gate import banner
from gate.consent import undecided

from .conftest import policy_registry

REGISTRY = policy_registry()
ALL = frozenset(REGISTRY.tags)
HOSTILE = '"><script>alert(1)</script>'
STATIC = Path(banner.__file__).parent / "static"
ORIGIN = "https://jobs.example.jp"  # gate's public origin: every injected URL is absolute on it


def render(
    *,
    lang: str = "ja",
    next_path: str = "/jobs",
    carried: frozenset[str] = ALL,
    gpc: bool = False,
    opt_out: bool = False,
    nonce: str | None = None,
    policy_url: str = "/privacy",
) -> BeautifulSoup:
    consent = undecided(REGISTRY, gpc=gpc, opt_out_mode=opt_out)
    html = banner.render_banner(
        REGISTRY,
        consent,
        lang=lang,
        next_path=next_path,
        policy_url=policy_url,
        carried=carried,
        origin=ORIGIN,
        nonce=nonce,
    )
    return BeautifulSoup(html, "html5lib")


def dialog(soup: BeautifulSoup):
    return soup.find(attrs={"role": "dialog"})


def test_dialog_is_labelled_by_its_heading():
    d = dialog(render())
    title = d.find(id=d["aria-labelledby"])
    assert title.name == "h2" and title.get_text(strip=True) == "Cookieと外部送信について"
    assert d["lang"] == "ja" and d.get("aria-modal") is None  # not a focus trap


def test_one_plain_form_posts_to_the_consent_endpoint():
    forms = dialog(render()).find_all("form")
    assert len(forms) == 1
    form = forms[0]
    assert form["method"] == "post" and form["action"] == ORIGIN + "/_gate/consent"
    assert form.find("input", attrs={"name": "next"})["value"] == "/jobs"
    choices = [b["value"] for b in form.find_all("button", attrs={"name": "choice"})]
    assert choices == ["accept_all", "reject_all", "settings", "custom"]


def test_three_first_layer_buttons_have_equal_weight():
    row = dialog(render()).find(class_="gate-row")
    buttons = row.find_all(True, recursive=False)
    assert [b.get_text() for b in buttons] == ["すべて同意", "すべて拒否", "設定"]
    assert {b.name for b in buttons} == {"button"}
    assert len({tuple(b["class"]) for b in buttons}) == 1


def test_settings_button_opens_the_preferences_page_without_javascript():
    settings = dialog(render()).find("button", attrs={"value": "settings"})
    assert settings["formaction"] == ORIGIN + "/_gate/preferences" and settings["formmethod"] == "get"


@pytest.mark.parametrize(
    "gpc,opt_out",
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["plain", "gpc", "opt-out", "gpc+opt-out"],
)
def test_no_purpose_is_preticked_in_opt_in_and_opt_out_ticks_what_is_sent(gpc, opt_out):
    boxes = dialog(render(gpc=gpc, opt_out=opt_out)).find_all("input", attrs={"name": "purposes"})
    assert [b["value"] for b in boxes] == ["improvement", "advertising", "suggestions"]  # content: no tag uses it
    # Opt-out mode sends until refused: its switches show what is sent now (issue 11.4), GPC's refusal included.
    sent = {"improvement"} | (set() if gpc else {"advertising", "suggestions"}) if opt_out else set()
    assert {b["value"] for b in boxes if b.has_attr("checked")} == sent


def test_security_is_shown_always_on():
    box = dialog(render()).find("input", attrs={"disabled": True})
    assert box.has_attr("checked") and not box.has_attr("name")
    assert "セキュリティ確保" in box.parent.get_text() and "常に有効" in box.parent.get_text()


def test_each_purpose_lists_its_services_and_recipients():
    d = dialog(render())
    box = d.find("input", attrs={"value": "suggestions"})
    who = d.find(id=box["aria-describedby"].split()[-1]).get_text(" ")  # (the first id: its summary)
    assert "Criteo SA" in who and "Criteo OneTag" in who and "LINEヤフー株式会社" in who
    assert "Google" not in who


@pytest.mark.parametrize(
    "html",
    [
        render(),
        render(lang="en", gpc=True),
        BeautifulSoup(banner.render_dock(lang="ja", next_path="/a", origin=ORIGIN), "html5lib"),
        BeautifulSoup(banner.render_footer_link(lang="en", origin=ORIGIN), "html5lib"),
    ],
    ids=["banner", "banner-en-gpc", "dock", "footer-link"],
)
def test_every_injected_element_carries_data_gate(html):
    injected = [e for e in html.find_all(True) if e.name not in ("html", "head", "body")]
    assert injected and all(e.has_attr("data-gate") for e in injected)


def test_hostile_next_path_stays_a_value():
    soup = render(next_path=HOSTILE, policy_url='javascript:"><b>')
    assert soup.find("input", attrs={"name": "next"})["value"] == HOSTILE
    assert [s["src"] for s in soup.find_all("script")] == [ORIGIN + banner.JS_URL]
    dock = BeautifulSoup(banner.render_dock(lang="ja", next_path=HOSTILE, origin=ORIGIN), "html5lib")
    assert [s["src"] for s in dock.find_all("script")] == [ORIGIN + banner.JS_URL]
    assert dock.find("a", class_="gate-set")["href"].startswith(ORIGIN + "/_gate/preferences?next=%22%3E%3Cscript")


def test_english_when_asked():
    d = dialog(render(lang="en"))
    assert d["lang"] == "en"
    assert [b.get_text() for b in d.find(class_="gate-row").find_all("button")] == [
        "Accept all",
        "Reject all",
        "Settings",
    ]
    assert d.find("a", string="External transmission")["href"] == ORIGIN + "/_gate/notice?gate_lang=en"


def test_gpc_line_only_when_the_signal_was_sent():
    assert dialog(render()).find(class_="gate-gpc") is None
    assert "Global Privacy Control" in dialog(render(lang="en", gpc=True)).find(class_="gate-gpc").get_text()
    assert "GPC" in dialog(render(gpc=True)).find(class_="gate-gpc").get_text()


def test_nonce_lands_on_the_script():
    assert render(nonce="r4nd0m").find("script")["nonce"] == "r4nd0m"
    script = render().find("script")
    assert not script.has_attr("nonce") and script.has_attr("defer")
    assert render().find("link", rel="stylesheet")["href"] == ORIGIN + banner.CSS_URL


def test_only_carried_vendors_are_named():
    text = dialog(render(carried=frozenset({"google.analytics", "criteo.onetag"}))).get_text()
    assert "Google LLC" in text and "Criteo SA" in text
    for recipient in ("LINEヤフー株式会社", "Adjust GmbH", "Meta Platforms"):
        assert recipient not in text


def test_all_five_recipients_named_on_the_first_layer():
    first = dialog(render()).find("p").get_text()
    for name in ("Google LLC", "LINEヤフー株式会社", "Criteo SA", "Adjust GmbH", "Meta Platforms, Inc."):
        assert name in first
    # 位置情報 only when a carried tag sends location (issue 11.4); none of the five does.
    assert "Cookie情報、ユーザー識別子、IPアドレス、広告識別子、Web閲覧履歴" in first


def test_banner_links_to_the_notice_and_the_policy():
    hrefs = [a["href"] for a in dialog(render(policy_url="/privacy?x=1&y=2")).find_all("a")]
    assert hrefs == [ORIGIN + "/_gate/notice", ORIGIN + "/privacy?x=1&y=2"]


def test_settings_link_and_footer_link():
    dock = BeautifulSoup(banner.render_dock(lang="ja", next_path="/jobs?id=3", origin=ORIGIN), "html5lib")
    a = dock.find("a", class_="gate-set")
    assert a.get_text() == "Cookie設定" and a["href"] == ORIGIN + "/_gate/preferences?next=%2Fjobs%3Fid%3D3"
    a = BeautifulSoup(banner.render_dock(lang="en", next_path="/", origin=ORIGIN), "html5lib").find(
        "a", class_="gate-set"
    )
    assert a.get_text() == "Cookie settings" and a["href"].endswith("&gate_lang=en")
    a = BeautifulSoup(banner.render_footer_link(lang="ja", origin=ORIGIN), "html5lib").find("a")
    assert a.get_text() == "外部送信について" and a["href"] == ORIGIN + "/_gate/notice"


@pytest.mark.parametrize(
    "query,accept,expected",
    [
        (None, None, "ja"),
        ("en", "ja", "en"),
        ("ja", "en-US", "ja"),
        ("xx", "en-US,en;q=0.9", "en"),
        (None, "en-US,en;q=0.9,ja;q=0.8", "en"),
        (None, "ja,en-US;q=0.9", "ja"),
        (None, "fr-FR, de", "ja"),
        (None, "en;q=0.5, ja;q=0.7", "ja"),
        (None, "en;q=bad", "ja"),
    ],
)
def test_choose_lang(query, accept, expected):
    assert banner.choose_lang(query, accept) == expected


# -- static files ---------------------------------------------------------------------------------
def css_selectors(css: str) -> list[str]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"@media[^{]*\{", "", css)
    blocks = re.findall(r"([^{}]+)\{[^{}]*\}", css)
    return [s.strip() for block in blocks for s in re.split(r",(?![^()]*\))", block)]  # not inside :is()


@pytest.mark.parametrize("name", ["gate.css", "pages.css"])
def test_css_is_scoped_to_data_gate(name):
    selectors = [s for s in css_selectors((STATIC / name).read_text()) if s]
    assert selectors and all("[data-gate]" in s for s in selectors), selectors


def test_css_base_font_and_line_height():
    css = (STATIC / "gate.css").read_text()
    size, height = re.search(r"font-size:(\d+)px;font-weight:400;font-style:normal;line-height:([\d.]+)", css).groups()
    assert int(size) >= 16 and float(height) >= 1.5
    assert all(int(n) >= 16 for n in re.findall(r"font-size:\s*(\d+)px", css))


def luminance(colour: str) -> float:
    if len(colour) == 4:
        colour = "#" + "".join(c * 2 for c in colour[1:])
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.mark.parametrize(
    "fg,bg",
    [("#1b1b1b", "#fff"), ("#fff", "#1a4fa0"), ("#1a4fa0", "#fff"), ("#444", "#fff")],
    ids=["text", "button", "link", "muted"],
)
def test_colour_pairs_have_contrast(fg, bg):
    css = (STATIC / "gate.css").read_text().lower()
    assert f"color:{fg}" in css and f"background:{bg}" in css
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    assert (hi + 0.05) / (lo + 0.05) >= 4.5


def test_script_is_csp_friendly_and_never_accepts_on_escape():
    js = (STATIC / "gate.js").read_text()
    for banned in ("eval(", "new Function", "innerHTML", "http://", "https://", 'setAttribute("on'):
        assert banned not in js
    escape_handler = js[js.index('"Escape"') : js.index("});", js.index('"Escape"'))]
    assert "accept" not in escape_handler and "submit" not in escape_handler


def test_script_finds_the_elements_it_enhances():
    ids = {e["id"] for e in render().find_all(id=True)}
    wanted = set(re.findall(r'getElementById\("([\w-]+)"\)', (STATIC / "gate.js").read_text()))
    assert wanted and wanted <= ids


def test_banner_core_imports_no_server_library():
    tree = ast.parse(Path(banner.__file__).read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.split(".")[0] in ("starlette", "httpx", "uvicorn")}


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_banner_bytes_stay_small(lang):
    sizes = banner.payload_bytes(REGISTRY, lang)
    print(f"\nbanner bytes ({lang}): " + ", ".join(f"{k} {raw} raw / {gz} gzip" for k, (raw, gz) in sizes.items()))
    assert sizes["total"][1] < 5 * 1024  # the best open-source banner: 15 KB gzip


# The per-page cache: render_banner's and render_dock's very bytes, whatever the inputs.
PATHS = ["/jobs", "/", '/a"b<c>&d', "/検索?q=東京&x=1 2", "/p?next=%2F&gate_lang=en", "/'><script>x</script>"]
NONCES = [None, "", "abc123", 'n"><x']


def _consents():
    refusable = REGISTRY.refusable
    base = undecided(REGISTRY)
    yield base
    yield undecided(REGISTRY, gpc=True)
    yield undecided(REGISTRY, opt_out_mode=True)
    yield undecided(REGISTRY, gpc=True, opt_out_mode=True)
    some = frozenset(list(REGISTRY.tags)[:1])
    # An earlier decision that no longer covers every tag, with some purposes accepted, in both modes.
    for opt_out in (False, True):
        yield dataclasses.replace(
            base, covered=some, opt_out_mode=opt_out, purposes={p: i % 2 == 0 for i, p in enumerate(refusable)}
        )
        yield dataclasses.replace(
            base, covered=some, opt_out_mode=opt_out, purposes={p: i % 2 == 1 for i, p in enumerate(refusable)}
        )


def test_cached_banner_is_byte_identical_to_rendering_it():
    banner._cache.clear()
    carrieds = [ALL, frozenset(list(REGISTRY.tags)[:2])]
    seen = 0
    for _round in range(2):  # the second round is served from the cache
        for consent in _consents():
            for lang in ("ja", "en", "fr"):
                for path in PATHS:
                    for nonce in NONCES:
                        for carried in carrieds:
                            kw = dict(
                                lang=lang,
                                next_path=path,
                                policy_url="/privacy?a=1&b=2",
                                carried=carried,
                                origin=ORIGIN,
                                nonce=nonce,
                            )
                            want = banner.render_banner(REGISTRY, consent, **kw)
                            assert banner.cached_banner(REGISTRY, consent, **kw) == want, (consent, kw)
                            seen += 1
    assert banner._cache and seen > 1000


def test_cached_dock_is_byte_identical_to_rendering_it():
    banner._cache.clear()
    for _round in range(2):
        for lang in ("ja", "en", "fr"):
            for path in PATHS:
                for nonce in NONCES:
                    for notice_link in (True, False):
                        for corner, offset in (("bottom-left", 8), ("top-right", 24)):
                            kw = dict(
                                lang=lang,
                                next_path=path,
                                origin=ORIGIN,
                                notice_link=notice_link,
                                corner=corner,
                                offset=offset,
                                nonce=nonce,
                            )
                            assert banner.cached_dock(**kw) == banner.render_dock(**kw), kw
    assert banner._cache


def test_cached_banner_carries_this_pages_path_and_nonce_not_the_last_ones():
    banner._cache.clear()
    kw = dict(policy_url="/privacy", carried=ALL, origin=ORIGIN, lang="ja")
    banner.cached_banner(REGISTRY, undecided(REGISTRY), next_path="/first", nonce="n1", **kw)
    soup = BeautifulSoup(
        banner.cached_banner(REGISTRY, undecided(REGISTRY), next_path='/x"<y', nonce="n2", **kw), "html5lib"
    )
    assert soup.find("input", attrs={"name": "next"})["value"] == '/x"<y'
    assert [s["nonce"] for s in soup.find_all("script")] == ["n2"]
    dock = BeautifulSoup(banner.cached_dock(lang="en", next_path="/first", origin=ORIGIN), "html5lib")
    dock = BeautifulSoup(banner.cached_dock(lang="en", next_path='/x"<y', origin=ORIGIN), "html5lib")
    assert dock.find("a", class_="gate-set")["href"].endswith("/_gate/preferences?next=%2Fx%22%3Cy&gate_lang=en")
    # A visitor whose browser sends GPC after one who did not: the GPC line, not the cached banner.
    plain = banner.cached_banner(REGISTRY, undecided(REGISTRY), next_path="/", **kw)
    gpc = banner.cached_banner(REGISTRY, undecided(REGISTRY, gpc=True), next_path="/", **kw)
    assert "gate-gpc" not in plain and "gate-gpc" in gpc


def test_banner_cache_stays_bounded():
    banner._cache.clear()
    for i in range(banner.CACHE_SIZE + 50):
        banner.cached_dock(lang="ja", next_path="/", origin=f"https://h{i}.example.jp")
    assert len(banner._cache) == banner.CACHE_SIZE
    assert banner.cached_dock(lang="ja", next_path="/", origin="https://h0.example.jp") == banner.render_dock(
        lang="ja", next_path="/", origin="https://h0.example.jp"
    )
