"""urls.parse reads a URL the way a browser does (WHATWG URL Standard), as far as gating needs it:
which host would be contacted, and which path. Each row is a trick a page could use to hide a tag."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate import urls
from gate.urls import URL

PAGE = URL("https", "jobs.example.jp", "/jobs/42?ref=top")

# (written in the page, base, what the browser fetches)
TABLE = [
    # scheme and case
    (
        "https://connect.facebook.net/en_US/fbevents.js",
        None,
        URL("https", "connect.facebook.net", "/en_US/fbevents.js"),
    ),
    ("HTTPS://CONNECT.FACEBOOK.NET/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://example.com", None, URL("https", "example.com", "/")),
    ("https://example.com/p#fragment", None, URL("https", "example.com", "/p")),
    # userinfo: the host is after the last @
    ("https://user:pass@example.com/", None, URL("https", "example.com", "/")),
    ("https://connect.facebook.net@evil.example/x.js", None, URL("https", "evil.example", "/x.js")),
    ("https://a@b@connect.facebook.net/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    # backslashes are slashes in special schemes, and end the authority
    (
        "https:\\\\connect.facebook.net\\en_US\\fbevents.js",
        None,
        URL("https", "connect.facebook.net", "/en_US/fbevents.js"),
    ),
    ("https:/\\connect.facebook.net/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://example.com\\@connect.facebook.net/", None, URL("https", "example.com", "/@connect.facebook.net/")),
    ("https:////connect.facebook.net/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https:connect.facebook.net/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    # tabs and newlines vanish anywhere; C0 controls and spaces are stripped at both ends
    ("ht\ttps://conn\nect.facebook.net/x\r.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("\x00\x1f  https://connect.facebook.net/x.js \x0b", None, URL("https", "connect.facebook.net", "/x.js")),
    # host spelling: trailing dot, percent-encoding, full-width, ideographic dots, IDNA
    ("https://connect.facebook.net./x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://connect.facebook.net%2e/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://connect%2Efacebook%2enet/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://ｃｏｎｎｅｃｔ．ｆａｃｅｂｏｏｋ．ｎｅｔ/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://connect。facebook。net/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://ＣＯＮＮＥＣＴ.facebook.net/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://☃.example/", None, URL("https", "xn--n3h.example", "/")),
    # ports never change the host
    ("https://connect.facebook.net:443/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://connect.facebook.net:8443/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://connect.facebook.net:/x.js", None, URL("https", "connect.facebook.net", "/x.js")),
    ("https://[::1]:8080/x", None, URL("https", "[::1]", "/x")),
    # protocol-relative and relative URLs take the page's scheme and host
    ("//connect.facebook.net/x.js", PAGE, URL("https", "connect.facebook.net", "/x.js")),
    ("\\\\connect.facebook.net\\x.js", PAGE, URL("https", "connect.facebook.net", "/x.js")),
    ("/\\connect.facebook.net/x.js", PAGE, URL("https", "connect.facebook.net", "/x.js")),
    ("/static/app.js", PAGE, URL("https", "jobs.example.jp", "/static/app.js")),
    ("app.js", PAGE, URL("https", "jobs.example.jp", "/jobs/app.js")),
    ("?page=2", PAGE, URL("https", "jobs.example.jp", "/jobs/42?page=2")),
    ("https:app.js", PAGE, URL("https", "jobs.example.jp", "/jobs/app.js")),
    # one slash after the base's own scheme is a path on the base's host (node's URL agrees:
    # new URL("https:/tr?id=1", "https://www.facebook.com/x/").href is "https://www.facebook.com/tr?id=1")
    ("https:/tr?id=1", URL("https", "www.facebook.com", "/x/"), URL("https", "www.facebook.com", "/tr?id=1")),
    ("https:\\tr", URL("https", "www.facebook.com", "/x/"), URL("https", "www.facebook.com", "/tr")),
    ("https:/\\tr", URL("https", "www.facebook.com", "/x/"), URL("https", "tr", "/")),
    ("http:/tr", URL("https", "www.facebook.com", "/x/"), URL("http", "tr", "/")),
    ("http:connect.facebook.net/x.js", PAGE, URL("http", "connect.facebook.net", "/x.js")),
    ("wss://connect.facebook.net/", None, URL("wss", "connect.facebook.net", "/")),
    # dot segments are removed before the request is made
    pytest.param(
        "https://www.google.com/x/../pagead/1p-conversion/1/",
        None,
        URL("https", "www.google.com", "/pagead/1p-conversion/1/"),
        id="dot-dot",
    ),
    pytest.param(
        "https://www.google.com/x/%2e%2E/pagead/1p-conversion/1/",
        None,
        URL("https", "www.google.com", "/pagead/1p-conversion/1/"),
        id="pct-dot-dot",
    ),
    pytest.param(
        "./../pagead/x",
        URL("https", "www.google.com", "/a/b"),
        URL("https", "www.google.com", "/pagead/x"),
        id="relative-dot-dot",
    ),
    pytest.param(
        "https://www.facebook.com?id=1", None, URL("https", "www.facebook.com", "/?id=1"), id="query-without-path"
    ),
]


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [row if hasattr(row, "marks") else pytest.param(*row, id=repr(row[0])) for row in TABLE],
)
def test_parse_reads_urls_as_a_browser_does(raw, base, expected):
    assert urls.parse(raw, base) == expected


@pytest.mark.parametrize(
    ("raw", "expected_scheme"),
    [
        ("javascript:alert(1)", "javascript"),
        ("data:text/javascript,fbq('init','1')", "data"),
        ("blob:https://jobs.example.jp/1234", "blob"),
        ("mailto:jobs@example.jp", "mailto"),
    ],
)
def test_non_special_schemes_have_no_host(raw, expected_scheme):
    url = urls.parse(raw, PAGE)
    assert url is not None and url.scheme == expected_scheme and url.host == ""


def test_relative_url_without_a_base_is_nothing():
    assert urls.parse("/x.js") is None
    assert urls.parse("//connect.facebook.net/x.js") is None


def test_key_is_the_form_url_patterns_match():
    assert urls.parse("HTTPS://Connect.Facebook.Net./en_US/fbevents.js?v=2#x").key == (
        "//connect.facebook.net/en_US/fbevents.js?v=2"
    )


# -- how much of the base a URL reads (what gate's decision cache keys on) -------------------------
EXAMPLES = int(os.environ.get("GATE_HYPOTHESIS_EXAMPLES", "1500"))


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("https://connect.facebook.net/x.js", urls.READS_SCHEME),  # compared with the base's scheme
        ("javascript:fbq('init')", urls.READS_NOTHING),
        ("data:text/html,<p>", urls.READS_NOTHING),
        ("//connect.facebook.net/x.js", urls.READS_SCHEME),
        ("\\\\connect.facebook.net/x.js", urls.READS_SCHEME),
        ("/tr?id=1", urls.READS_ORIGIN),
        (" \t/tr?id=1", urls.READS_ORIGIN),
        ("https:/tr", urls.READS_ORIGIN),  # same scheme, one slash: a path on the base's host
        ("https:tr", urls.READS_ALL),
        ("https://tr", urls.READS_SCHEME),
        ("https:/\\tr", urls.READS_SCHEME),
        ("tr?id=1", urls.READS_ALL),
        ("../tr", urls.READS_ALL),
        ("?id=1", urls.READS_ALL),
        ("", urls.READS_ALL),
        ("#top", urls.READS_ALL),
    ],
)
def test_base_read(raw, read):
    assert urls.base_read(raw, PAGE) == read


BASES = [
    URL("https", "jobs.example.jp", "/jobs/42?ref=top"),
    URL("https", "jobs.example.jp", "/"),
    URL("https", "jobs.example.jp", "/events/a/b"),
    URL("https", "www.facebook.com", "/tr/"),
    URL("http", "jobs.example.jp", "/jobs/42"),
    URL("http", "connect.facebook.net", "/x/"),
]
RAW_PIECES = [
    "https:",
    "http:",
    "HTTPS:",
    "javascript:",
    "data:",
    "//",
    "/",
    "\\",
    "\t",
    "\n",
    " ",
    "\x00",
    "connect.facebook.net",
    "jobs.example.jp",
    "tr",
    "?id=1",
    "#f",
    "..",
    ".",
    "%2e",
    "x@",
    ":443",
]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.sampled_from(RAW_PIECES), max_size=8), st.sampled_from(BASES), st.sampled_from(BASES))
def test_bases_that_agree_on_what_is_read_give_the_same_url(pieces, a, b):
    raw = "".join(pieces)
    read = urls.base_read(raw, a)
    agree = (
        read == urls.READS_NOTHING
        or read == urls.READS_SCHEME
        and a.scheme == b.scheme
        or read == urls.READS_ORIGIN
        and (a.scheme, a.host) == (b.scheme, b.host)
        or a == b
    )
    if agree:
        assert urls.base_read(raw, b) == read
        assert urls.parse(raw, a) == urls.parse(raw, b)
