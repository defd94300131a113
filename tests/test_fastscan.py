"""The C scan (gate/_fastscan.c) must answer exactly what the regex it replaces answers
(htmlstream.BORING_HTML, the definition), on generated markup full of the tricky bytes."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate import htmlstream
from gate.demo import bench_page

fastscan = pytest.importorskip("gate._fastscan", reason="the C extension is not built (no compiler at install)")
EXAMPLES = int(os.environ.get("GATE_HYPOTHESIS_EXAMPLES", "1500")) * 2

PIECES = [
    "<", ">", "/", "=", '"', "'", " ", "\t", "\n", "\f", "\r", "!", "?", "-", "a", "x", "é", "\x00",
    "<div", "<DIV", "<p", "<a", "</a", "</div", "</body", "</BODY", "</svg", "</select", "<script", "<Script",
    "<img", "<iframe", "<svg", "<style", "<br/>", "<scripts", "<imgx", "</ div>", "</>", "<!--", "<?x",
    " href", " HREF", " href=", " hreflang=", "=", " on", " onclick", " ONLOAD", " one", " style", " styles",
    " src", " srcset", " data", " data-x", " ping", " content", " class", " =x", " xlink:href", " action",
    '"/x"', '"#a"', '"?q"', '"http://e.jp/"', '"HTTPS://e.jp/"', '"mailto:a@b"', '"tel:1"', '"./x"', '"../x"',
    '"javascript:x"', "'/y'", "/z", "javascript:x", "https://x", "ftp://x", '""', "''",
]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.integers(min_value=0, max_value=5))
def test_c_scan_equals_the_regex(parts, start):
    buf = "".join(parts).encode("utf-8")
    pos = min(start, len(buf))
    assert fastscan.boring_html(buf, pos) == htmlstream.BORING_HTML.match(buf, pos).end()


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200))
def test_c_scan_equals_the_regex_on_any_bytes(buf, pos):
    pos = min(pos, len(buf))
    assert fastscan.boring_html(buf, pos) == htmlstream.BORING_HTML.match(buf, pos).end()


@pytest.mark.parametrize("size", ["20k", "100k"])
@pytest.mark.parametrize("charset", ["utf-8", "sjis"])
def test_c_scan_equals_the_regex_at_every_stop_of_a_real_page(size, charset):
    page = bench_page(size, charset)
    pos = 0
    while pos < len(page):
        end = htmlstream.BORING_HTML.match(page, pos).end()
        assert fastscan.boring_html(page, pos) == end
        pos = end + 1
