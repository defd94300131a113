"""The C scan (gate/_fastscan.c) must answer exactly what the regex it replaces answers
(htmlstream.BORING_HTML, the definition), on generated markup full of the tricky bytes."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate import htmlstream, matcher
from gate.demo import bench_page

fastscan = pytest.importorskip("gate._fastscan", reason="the C extension is not built (no compiler at install)")
EXAMPLES = int(os.environ.get("GATE_HYPOTHESIS_EXAMPLES", "1500")) * 2

PIECES = [
    "<",
    ">",
    "/",
    "=",
    '"',
    "'",
    " ",
    "\t",
    "\n",
    "\f",
    "\r",
    "!",
    "?",
    "-",
    "a",
    "x",
    "é",
    "\x00",
    "<div",
    "<DIV",
    "<p",
    "<a",
    "</a",
    "</div",
    "</body",
    "</BODY",
    "</svg",
    "</select",
    "<script",
    "<Script",
    "<img",
    "<iframe",
    "<svg",
    "<style",
    "<br/>",
    "<scripts",
    "<imgx",
    "</ div>",
    "</>",
    "<!--",
    "<?x",
    " href",
    " HREF",
    " href=",
    " hreflang=",
    "=",
    " on",
    " onclick",
    " ONLOAD",
    " one",
    " style",
    " styles",
    " src",
    " srcset",
    " data",
    " data-x",
    " ping",
    " content",
    " class",
    " =x",
    " xlink:href",
    " action",
    '"/x"',
    '"#a"',
    '"?q"',
    '"http://e.jp/"',
    '"HTTPS://e.jp/"',
    '"mailto:a@b"',
    '"tel:1"',
    '"./x"',
    '"../x"',
    '"javascript:x"',
    "'/y'",
    "/z",
    "javascript:x",
    "https://x",
    "ftp://x",
    '""',
    "''",
    "<!-->",
    "<!--->",
    "-->",
    "--!>",
    "--",
    "<!-",
    "<!DOCTYPE html>",
    "<![CDATA[",
    "]]>",
    "<?xml ?>",
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


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.integers(min_value=0, max_value=5))
def test_c_read_tag_equals_the_python_definition(parts, start):
    buf = "".join(parts).encode("utf-8")
    for pos in range(min(start, len(buf)), len(buf)):
        assert fastscan.read_tag(buf, pos) == htmlstream.read_tag_py(buf, pos)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200))
def test_c_read_tag_equals_the_python_definition_on_any_bytes(buf, pos):
    buf = b"<" + buf
    for at in (0, min(pos, len(buf))):
        assert fastscan.read_tag(buf, at) == htmlstream.read_tag_py(buf, at)


@pytest.mark.parametrize("size", ["20k", "100k"])
@pytest.mark.parametrize("charset", ["utf-8", "sjis"])
def test_c_read_tag_equals_the_python_definition_at_every_lt_of_a_real_page(size, charset):
    page = bench_page(size, charset)
    read = 0
    for pos in range(len(page)):
        if page[pos] == 0x3C:
            tag = fastscan.read_tag(page, pos)
            assert tag == htmlstream.read_tag_py(page, pos)
            assert tag is None or type(tag) is htmlstream.Tag
            read += tag is not None
            if tag is not None:  # every prefix of it is incomplete, for both
                cut = page[: tag.end - 1 - pos % 7]
                assert fastscan.read_tag(cut, pos) == htmlstream.read_tag_py(cut, pos)
    assert read > 100


@pytest.mark.parametrize(
    ("tag", "self_closing"),
    [
        (b"<br/>", True),
        (b'<a x="y"/>', True),
        (b"<a / >", False),
        (b"<a href=x/>", False),  # the unquoted value takes the "/": not self-closing
        (b"<a href=x />", True),
        (b"<a =x/>", True),  # "=x" is a name: the "/" is the tail
        (b"<a b c=d e>", False),
        (b"</a b='c'>", False),
    ],
)
def test_c_read_tag_on_tails_and_values(tag, self_closing):
    assert fastscan.read_tag(tag, 0) == htmlstream.read_tag_py(tag, 0)
    assert fastscan.read_tag(tag, 0).self_closing is self_closing
    for cut in range(len(tag)):  # no prefix is a whole tag
        assert fastscan.read_tag(tag[:cut], 0) is None


def test_c_read_tag_names_are_the_python_definitions():
    odd = "<SCRİPT a=1><Ab\x80c/><x\xff>".encode()  # names with bytes above 0x7F: U+FFFD
    for pos in (0, odd.index(b"<Ab"), odd.index(b"<x")):
        assert fastscan.read_tag(odd, pos) == htmlstream.read_tag_py(odd, pos)
    assert fastscan.read_tag(b"<a>", 0).name == "a" and htmlstream.read_tag is fastscan.read_tag
    with pytest.raises(TypeError):
        fastscan.read_tag(bytearray(b"<a>"), 0)


WORDS = ("fbq", "fbqfbq", "gtag(", "adjust", "adjust.initsdk", "facebook.net", "n.version", "_fbq.push(")
TEXT_PIECES = [
    "fbq",
    "FBQ",
    "fBq",
    "gtag(",
    "GTAG (",
    "adjust",
    "ADJUST.initSdk",
    "facebook.net",
    "FACEBOOK.NET",
    "n.version",
    "_fbq.push(",
    "f",
    "b",
    "q",
    ".",
    "(",
    " ",
    "\n",
    "é",
    "\u0130",
    "\u212a",
    "求人",
    "\U0001f600",
    "\x00",
]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.sampled_from(TEXT_PIECES), max_size=30))
def test_c_word_positions_equal_the_python_definition(parts):

    text = "".join(parts)
    assert fastscan.word_positions(text, WORDS) == matcher._word_positions_py(text, WORDS)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=120))
def test_c_word_positions_equal_the_python_definition_on_any_text(text):

    assert fastscan.word_positions(text, WORDS) == matcher._word_positions_py(text, WORDS)


def test_c_word_positions_on_the_registry_and_a_real_page():
    from gate import vendors

    registry = vendors.load()
    page = bench_page("100k").decode("utf-8")
    found = fastscan.word_positions(page, registry.matcher.words)
    assert found == matcher._word_positions_py(page, registry.matcher.words)
    assert "fbq" in found and "googletagmanager.com" in found


def test_c_word_positions_rejects_words_it_cannot_compare():
    with pytest.raises(ValueError):
        fastscan.word_positions("abc", ("é",))
    with pytest.raises(ValueError):
        fastscan.word_positions("abc", ("",))
    with pytest.raises(TypeError):
        fastscan.word_positions(b"abc", ("a",))


SCRIPT_PIECES = [
    "<!--",
    "-->",
    "<!-->",
    "<!--->",
    "--",
    "-",
    "<",
    ">",
    "!",
    "/",
    " ",
    "\t",
    "</script>",
    "</SCRIPT ",
    "</script/",
    "</scripts>",
    "</script",
    "<script>",
    "<Script ",
    "<scriptx",
    "</",
    "<s",
    "x",
    "é",
    "if (a<b) {}",
    "</style>",
]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(st.sampled_from(SCRIPT_PIECES), max_size=30),
    st.integers(min_value=0, max_value=8),
    st.sampled_from([htmlstream.SCRIPT_NORMAL, htmlstream.SCRIPT_ESCAPED, htmlstream.SCRIPT_DOUBLE]),
)
def test_c_script_end_equals_the_python_definition(parts, start, state):
    buf = "".join(parts).encode("utf-8")
    pos = min(start, len(buf))
    assert fastscan.script_end(buf, pos, state) == htmlstream.script_end_py(buf, pos, state)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=120), st.integers(min_value=0, max_value=130), st.integers(min_value=0, max_value=2))
def test_c_script_end_equals_the_python_definition_on_any_bytes(buf, pos, state):
    assert fastscan.script_end(buf, pos, state) == htmlstream.script_end_py(buf, pos, state)


def test_the_rewriter_uses_the_c_script_scan():
    assert htmlstream.script_end is fastscan.script_end
