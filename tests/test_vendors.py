"""vendors.toml: the shipped registry's fixed ids and purposes, URL and text matching, one-line errors."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import pytest

from gate import decisions, matcher, urls, vendors
from gate.errors import ConfigError
from gate.rewrite import PagePlan, PageRewriter

ROOT = Path(__file__).resolve().parent.parent
RAW = tomllib.loads((ROOT / "vendors.toml").read_text(encoding="utf-8"))
KNOWN = "advertising, content, improvement, security, suggestions"


@pytest.fixture(scope="module")
def registry() -> vendors.Registry:
    return vendors.load(ROOT / "vendors.toml")


def test_the_default_path_is_the_shipped_file(registry):
    assert vendors.load().version == registry.version


def test_purpose_ids_are_fixed_and_only_security_is_always_on(registry):
    assert list(registry.purposes) == ["improvement", "advertising", "suggestions", "content", "security"]
    assert {p.id: p.refusable for p in registry.purposes.values()} == {
        "improvement": True,
        "advertising": True,
        "suggestions": True,
        "content": True,
        "security": False,
    }
    assert registry.refusable == ("improvement", "advertising", "suggestions", "content")


def test_purpose_wording_is_the_policys(registry):
    assert [p.ja for p in registry.purposes.values()] == [
        "商品・サービスの開発および改善",
        "コンテンツ・広告の配信および提供",
        "利用者へのサービスの提案",
        "コンテンツの配信および提供",
        "セキュリティ確保",
    ]


def test_vendor_ids_are_fixed(registry):
    assert list(registry.vendors) == [
        "google",
        "yahoo",
        "criteo",
        "adjust",
        "facebook",
        "line",
        "tiktok",
        "x",
        "microsoft",
        "indeed",
        "kyujinbox",
        "a8",
    ]


def test_a_site_carries_the_five_vendors_the_policy_names_unless_it_names_others(registry):
    carried = registry.carried(None, None)
    assert {registry.tags[t].vendor for t in carried} == {"google", "yahoo", "criteo", "adjust", "facebook"}
    assert registry.carried(["line", "tiktok"], None) == {"line.tag", "tiktok.pixel"}


@pytest.mark.parametrize(
    ("tag_id", "purposes"),
    [
        ("google.analytics", {"improvement"}),
        ("google.ads", {"advertising"}),
        ("google.floodlight", {"advertising"}),
        ("google.tag_manager", {"improvement", "advertising"}),
        ("yahoo.ads", {"advertising"}),
        ("criteo.onetag", {"advertising", "suggestions"}),
        ("adjust.web_sdk", {"improvement", "advertising"}),
        ("facebook.pixel", {"advertising"}),
    ],
)
def test_shipped_tags_serve_the_declared_purposes(registry, tag_id, purposes):
    assert registry.tags[tag_id].purposes == purposes
    assert tag_id in registry.vendors[tag_id.split(".")[0]].tags


def test_every_tag_says_what_it_sends_without_a_vague_etc(registry):
    for tag in registry.tags.values():
        assert tag.information_ja and tag.information_en, tag.id
        assert not any("等" in item or "など" in item for item in tag.information_ja), tag.id


# -- which tag a URL belongs to -------------------------------------------------------------------
URL_TABLE = [
    ("https://www.googletagmanager.com/gtag/js?id=G-ABC123", {"google.analytics"}),
    ("https://www.googletagmanager.com/gtag/js?l=dataLayer&id=G-ABC123", {"google.analytics"}),
    ("https://www.googletagmanager.com/gtag/js?id=AW-123456789", {"google.ads"}),
    ("https://www.googletagmanager.com/gtag/js?id=DC-123456", {"google.floodlight"}),
    ("https://www.googletagmanager.com/gtm.js?id=GTM-ABCD12", {"google.tag_manager"}),
    ("https://www.googletagmanager.com/ns.html?id=GTM-ABCD12", {"google.tag_manager"}),
    ("https://region1.google-analytics.com/g/collect?v=2", {"google.analytics"}),
    ("https://stats.g.doubleclick.net/g/collect", {"google.analytics"}),
    ("https://googleads.g.doubleclick.net/pagead/viewthroughconversion/123/", {"google.ads"}),
    ("https://www.google.com/pagead/1p-conversion/123/", {"google.ads"}),
    ("https://www.google.com/search?q=jobs", set()),  # only /pagead/ on www.google.com is a vendor's
    ("https://ad.doubleclick.net/activity;src=1", {"google.floodlight"}),
    # a vendor's domain that no tag claims counts as every tag of that vendor (the strict reading)
    (
        "https://securepubads.g.doubleclick.net/tag/js/gpt.js",
        {"google.analytics", "google.ads", "google.floodlight", "google.tag_manager"},
    ),
    ("https://s.yimg.jp/images/listing/tool/cv/ytag.js", {"yahoo.ads"}),
    ("https://s.yimg.jp/images/top/logo.png", {"yahoo.ads", "yahoo.retargeting", "yahoo.tag_manager"}),
    ("https://b97.yahoo.co.jp/pagead/conversion/1/", {"yahoo.ads"}),
    ("https://s.yjtag.jp/tag.js", {"yahoo.tag_manager"}),
    ("https://static.criteo.net/js/ld/ld.js", {"criteo.onetag"}),
    ("https://gum.criteo.com/sync", {"criteo.onetag"}),
    ("https://cdn.adjust.com/adjust-latest.min.js", {"adjust.web_sdk"}),
    ("https://app.adjust.com/abc", {"adjust.web_sdk"}),
    ("https://connect.facebook.net/en_US/fbevents.js", {"facebook.pixel"}),
    ("https://www.facebook.com/tr?id=1&ev=PageView&noscript=1", {"facebook.pixel"}),
    # label matching: a suffix must be whole labels
    ("https://notfacebook.net/fbevents.js", set()),
    ("https://connect.facebook.net.example.org/en_US/fbevents.js", set()),
    ("https://mycriteo.com/ld.js", set()),
    # tricks that change the host the browser contacts
    ("HTTPS://CONNECT.FACEBOOK.NET./en_US/fbevents.js", {"facebook.pixel"}),
    ("https://ｃｏｎｎｅｃｔ．ｆａｃｅｂｏｏｋ．ｎｅｔ/en_US/fbevents.js", {"facebook.pixel"}),
    ("https:\\\\connect.facebook.net\\en_US\\fbevents.js", {"facebook.pixel"}),
    ("https://connect.facebook.net@jobs.example.jp/x.js", set()),
    ("https://jobs.example.jp/connect.facebook.net/x.js", set()),
    ("https://jobs.example.jp/?u=//connect.facebook.net/", set()),
    ("//connect.facebook.net/en_US/fbevents.js", {"facebook.pixel"}),
    ("/static/app.js", set()),
    ("javascript:fbq('init','1')", set()),
    pytest.param("https://www.google.com/x/../pagead/1p-conversion/123/", {"google.ads"}, id="dot-segments"),
]


@pytest.mark.parametrize(
    ("url", "expected"), [r if hasattr(r, "marks") else pytest.param(*r, id=r[0]) for r in URL_TABLE]
)
def test_tags_for_url(registry, url, expected):
    parsed = urls.parse(url, urls.URL("https", "jobs.example.jp", "/jobs/1"))
    assert parsed is not None
    assert registry.tags_for_url(parsed) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gtag('config', 'G-ABC123');", {"google.analytics"}),
        ('gtag("config","AW-123456789");', {"google.ads"}),
        ("gtag('event', 'conversion', {send_to: 'AW-1/abc'});", {"google.ads"}),
        ("(function(w,d,s,l,i){})(window,document,'script','dataLayer','GTM-ABCD12');", {"google.tag_manager"}),
        ('ytag({"type": "yss_conversion", "config": {}});', {"yahoo.ads"}),
        ('ytag({"type": "yss_retargeting"});', {"yahoo.retargeting"}),
        ("window.criteo_q.push({ event: 'setAccount', account: 1 });", {"criteo.onetag"}),
        ("Adjust.initSdk({appToken: 'x', environment: 'production'});", {"adjust.web_sdk"}),
        ("fbq('init', '1234567890'); fbq('track', 'PageView');", {"facebook.pixel"}),
        ('var u = "https:\\/\\/connect.facebook.net\\/en_US\\/fbevents.js";', {"facebook.pixel"}),
        ("console.log('connect.facebook.net.example.org');", set()),
        ("document.title = 'fbq is a word';", set()),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_tags_in_text(registry, text, expected):
    assert registry.tags_in_text(text) == expected


def test_personal_data_signatures(registry):
    assert registry.sends_personal_data("fbq('init', '123', {em: 'a@example.jp'})")
    assert registry.sends_personal_data("gtag('set', 'user_data', {email: h});")
    assert registry.sends_personal_data("window.criteo_q.push({ event: 'setHashedEmail', email: h });")
    assert not registry.sends_personal_data("fbq('init', '123')")
    assert not registry.sends_personal_data("window.criteo_q.push({ event: 'viewItem', item: 1 });")


# Text whose lower case is longer than itself (U+0130 lowers to two characters), Japanese text, and
# letters a case-insensitive regex folds (U+212A KELVIN SIGN is "k"): the words are still found
# where they stand, so nothing before them shifts a match away.
@pytest.mark.parametrize("prefix", ["", "/* \u0130stanbul \u0130 */ ", "/* 求人の閲覧を計測 */ ", "/* \u212a */ "])
def test_signatures_found_after_any_text(registry, prefix):
    assert registry.tags_in_text(prefix + "fbq('init', '1234567890');") == {"facebook.pixel"}
    assert registry.sends_personal_data(prefix + "fbq('init', '123', {em: 'a@example.jp'})")
    assert not registry.sends_personal_data(prefix + "fbq('init', '123')")


@pytest.mark.parametrize(
    ("tag_id", "cookie", "expected"),
    [
        ("google.analytics", "_ga", True),
        ("google.analytics", "_ga_ABC123", True),
        ("google.analytics", "_gaxyz", False),
        ("facebook.pixel", "_fbp", True),
        ("facebook.pixel", "_fbpx", False),
    ],
)
def test_cookie_matches_names_and_prefixes(registry, tag_id, cookie, expected):
    assert registry.tags[tag_id].cookie_matches(cookie) is expected


def test_a_site_can_narrow_the_tag_managers_purposes(registry):
    narrowed = registry.with_tag_purposes({"google.tag_manager": ["improvement"]})
    assert narrowed.tags["google.tag_manager"].purposes == {"improvement"}
    assert registry.tags["google.tag_manager"].purposes == {"improvement", "advertising"}
    assert registry.with_tag_purposes({}) is registry


# -- the policy version ---------------------------------------------------------------------------
def with_new_tag(raw: dict) -> dict:
    changed = copy.deepcopy(raw)
    changed["vendors"]["facebook"]["tags"].append(
        {"id": "facebook.capi", "service_ja": "x", "service_en": "x", "purposes": ["advertising"]}
    )
    return changed


def test_version_changes_when_a_tag_is_added():
    assert vendors.parse(with_new_tag(RAW)).version != vendors.parse(RAW).version


def test_version_changes_when_a_tags_purposes_change():
    changed = copy.deepcopy(RAW)
    changed["vendors"]["google"]["tags"][0]["purposes"] = ["improvement", "advertising"]
    assert vendors.parse(changed).version != vendors.parse(RAW).version


def test_version_ignores_wording():
    changed = copy.deepcopy(RAW)
    changed["purposes"]["improvement"]["en"] = "Making the site better"
    assert vendors.parse(changed).version == vendors.parse(RAW).version


def test_explicit_policy_version_wins():
    assert vendors.parse({**with_new_tag(RAW), "policy_version": "2026-11"}).version == "2026-11"


# -- errors: one line naming file, key, expectation -----------------------------------------------
def broken(path: tuple, value: object) -> dict:
    raw = copy.deepcopy(RAW)
    *parents, last = path
    target = raw
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return raw


CRITEO_TAG = ("vendors", "criteo", "tags", 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            broken((*CRITEO_TAG, "purposes"), ["ads"]),
            f"vendors.toml: vendor 'criteo', tag 'criteo.onetag': unknown purpose 'ads' (known: {KNOWN})",
        ),
        (
            broken((*CRITEO_TAG, "purposes"), []),
            "vendors.toml: vendor 'criteo', tag 'criteo.onetag': purposes: "
            f"expected at least one purpose (known: {KNOWN})",
        ),
        (
            broken((*CRITEO_TAG, "id"), "onetag"),
            "vendors.toml: vendor 'criteo', tag 'onetag': expected id 'criteo.<name>'",
        ),
        (
            broken((*CRITEO_TAG, "id"), "google.onetag"),
            "vendors.toml: vendor 'criteo', tag 'google.onetag': expected id 'criteo.<name>'",
        ),
        (
            broken((*CRITEO_TAG, "url_patterns"), ["(unclosed"]),
            "vendors.toml: vendor 'criteo', tag 'criteo.onetag': url_patterns: bad regular expression '(unclosed': ",
        ),
        (
            broken((*CRITEO_TAG, "hosts"), "criteo.com"),
            "vendors.toml: vendor 'criteo', tag 'criteo.onetag'.hosts: expected a list of strings",
        ),
        (
            broken(("vendors", "criteo", "recipient"), KeyError),
            "vendors.toml: vendors.criteo.recipient: expected a string, got nothing",
        ),
        (
            broken(("purposes", "security", "refusable"), "no"),
            "vendors.toml: purposes.security.refusable: expected true or false",
        ),
        (broken(("purposes",), {}), "vendors.toml: purposes: expected a table of purposes"),
        (broken(("vendors",), KeyError), "vendors.toml: vendors: expected a table of vendors"),
        (broken(("policy_version",), 2026), "vendors.toml: policy_version: expected a string"),
        (
            broken((*CRITEO_TAG, "calls"), ["criteo_q.push"]),
            "vendors.toml: vendor 'criteo', tag 'criteo.onetag': calls: "
            "expected a JavaScript global of 3 or more characters, got 'criteo_q.push'",
        ),
        (
            broken((*CRITEO_TAG, "call_ids"), ["(unclosed"]),
            "vendors.toml: vendor 'criteo', tag 'criteo.onetag': call_ids: bad regular expression '(unclosed': ",
        ),
    ],
    ids=[
        "unknown-purpose",
        "no-purpose",
        "bare-tag-id",
        "other-vendors-tag-id",
        "bad-regex",
        "hosts-not-list",
        "no-recipient",
        "refusable-not-bool",
        "no-purposes",
        "no-vendors",
        "version-not-string",
        "call-not-a-global",
        "bad-call-id",
    ],
)
def test_bad_registry_is_one_line_naming_file_key_and_expectation(raw, expected):
    with pytest.raises(ConfigError) as info:
        vendors.parse(raw, "vendors.toml")
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_duplicate_tag_id_is_named():
    raw = copy.deepcopy(RAW)
    raw["vendors"]["criteo"]["tags"].append(copy.deepcopy(raw["vendors"]["criteo"]["tags"][0]))
    with pytest.raises(ConfigError, match=r"^vendors\.toml: vendor 'criteo', tag 'criteo\.onetag': duplicate tag id$"):
        vendors.parse(raw, "vendors.toml")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "file not found"),
        ("purposes = [", "not valid TOML: "),
        (b"\xff\xfe", "not valid TOML: "),
    ],
    ids=["missing", "bad-toml", "not-utf8"],
)
def test_unreadable_file_is_one_line(tmp_path, content, expected):
    path = tmp_path / "vendors.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        vendors.load(path)
    assert str(info.value).startswith(f"{path}: {expected}")
    assert "\n" not in str(info.value)


# -- the design doc's tag table matches vendors.toml ----------------------------------------------
def test_design_doc_lists_every_tag_with_its_purposes(registry):
    readme = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    row = re.compile(r"^\| `([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)` \|[^|]*\|([^|]*)\|", re.M)
    rows = {m.group(1): m.group(2) for m in row.finditer(readme)}
    assert set(rows) == set(registry.tags)
    for tag in registry.tags.values():
        assert set(re.findall(r"[a-z]+", rows[tag.id])) == tag.purposes, tag.id


def test_script_judgments_are_remembered_and_bounded():
    registry = vendors.load()
    snippet = b"fbq('init', '123', {em: 'a@example.jp'}); fbq('track', 'PageView');"
    assert registry.judge_script(snippet, "utf-8") == (frozenset({"facebook.pixel"}), True, False)
    assert registry.judge_script(snippet, "utf-8") == (frozenset({"facebook.pixel"}), True, False)
    assert registry.judge_script(b"console.log(1)", "utf-8") == (frozenset(), False, False)
    for i in range(matcher._CACHE_ENTRIES * 2):  # a page that varies its inline scripts never grows it past the bound
        registry.judge_script(f"var n = {i};".encode(), "utf-8")
        assert len(registry.matcher._script_cache) <= matcher._CACHE_ENTRIES
    huge = b"/*" + b"x" * matcher._CACHED_TEXT_MAX + b"*/ fbq('init', '1');"
    assert registry.judge_script(huge, "utf-8") == (frozenset({"facebook.pixel"}), False, False)
    assert ("utf-8", huge, False) not in registry.matcher._script_cache


def test_forget_starts_cold():
    registry = vendors.load()
    registry.judge_script(b"fbq('init', '1');", "utf-8")
    registry.tags_for_url(urls.parse("https://connect.facebook.net/en_US/fbevents.js"))
    rw = PageRewriter(PagePlan(registry, frozenset(), urls.parse("https://jobs.example.jp/")))
    rw.feed(b'<img src="/a.png" alt="a" style="width:1px">') + rw.close()  # style: read, not passed inert
    remembered = registry.matcher
    assert len(remembered._script_cache) == 1 and len(remembered._url_cache) == 2  # fbevents.js, /a.png
    assert decisions.of(registry).verdicts and len(decisions.of(registry).attrs) == 1
    decisions.forget(registry)
    assert not remembered._script_cache and not remembered._url_cache
    assert not decisions.of(registry).verdicts and not decisions.of(registry).attrs
