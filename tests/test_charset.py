"""charset: the encoding a browser would read a page in (BOM, then Content-Type, then the <meta>
prescan over 1024 bytes, then UTF-8), and the transcoder for encodings the rewriter cannot read byte-wise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate import charset
from gate.charset import Transcoder

# (Content-Type, first bytes, codec)
SNIFF = [
    pytest.param("text/html; charset=UTF-8", b"<p>", "utf-8", id="header-utf8"),
    pytest.param("text/html; charset=Shift_JIS", b"", "cp932", id="header-shift-jis-is-cp932"),
    pytest.param('text/html; charset="sjis"', b"", "cp932", id="header-quoted-sjis"),
    pytest.param("text/html;charset=x-sjis", b"", "cp932", id="header-x-sjis"),
    pytest.param("text/html; charset=Windows-31J", b"", "cp932", id="header-windows-31j"),
    pytest.param("text/html; charset=EUC-JP", b"", "euc_jp", id="header-euc-jp"),
    pytest.param("text/html; charset=ISO-2022-JP", b"", "iso2022_jp", id="header-iso-2022-jp"),
    pytest.param("text/html; charset=iso-8859-1", b"", "cp1252", id="latin1-is-windows-1252"),
    pytest.param("text/html; charset=us-ascii", b"", "cp1252", id="ascii-is-windows-1252"),
    pytest.param("text/html; charset=utf-16", b"", "utf-16-le", id="utf16-label-is-le"),
    pytest.param("text/html; charset=utf-16be", b"", "utf-16-be", id="utf16be"),
    pytest.param("text/html; charset=shift_jis", b"\xef\xbb\xbf<p>", "utf-8", id="bom-beats-header"),
    pytest.param("text/html", b"\xff\xfe<\x00", "utf-16-le", id="bom-utf16le"),
    pytest.param("text/html", b"\xfe\xff\x00<", "utf-16-be", id="bom-utf16be"),
    pytest.param("text/html", b'<meta charset="shift_jis">', "cp932", id="meta-charset"),
    pytest.param("text/html", b"<meta charset=euc-jp>", "euc_jp", id="meta-charset-unquoted"),
    pytest.param(None, b"<!doctype html><html><head><META CHARSET='Shift_JIS'>", "cp932", id="meta-upper-case"),
    pytest.param(
        "text/html",
        b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">',
        "cp932",
        id="meta-http-equiv",
    ),
    pytest.param(
        "text/html",
        b'<meta content="text/html; charset=euc-jp" http-equiv="content-type">',
        "euc_jp",
        id="meta-http-equiv-after-content",
    ),
    pytest.param(
        "text/html", b'<meta content="text/html; charset=euc-jp">', "utf-8", id="meta-content-without-pragma-ignored"
    ),
    pytest.param(
        "text/html", b"<!-- <meta charset=shift_jis> --><meta charset=euc-jp>", "euc_jp", id="meta-in-comment-ignored"
    ),
    pytest.param(
        "text/html",
        b'<title x="<meta charset=shift_jis>">t</title><meta charset=euc-jp>',
        "euc_jp",
        id="meta-inside-attribute-ignored",
    ),
    pytest.param("text/html", b"<meta charset=utf-16>", "utf-8", id="meta-utf16-means-utf8"),
    pytest.param("text/html", b"<meta charset=klingon><meta charset=shift_jis>", "cp932", id="unknown-meta-skipped"),
    pytest.param("text/html", b" " * 1030 + b"<meta charset=shift_jis>", "utf-8", id="meta-past-1024-ignored"),
    pytest.param("text/html", b"<p>hello</p>", "utf-8", id="default-utf8"),
    pytest.param("text/html; charset=utf-7", b"", "utf-8", id="utf7-never"),
]


@pytest.mark.parametrize(("content_type", "head", "expected"), SNIFF)
def test_sniff(content_type: str | None, head: bytes, expected: str) -> None:
    assert charset.sniff(content_type, head) == expected


def test_unknown_header_charset_is_flagged_and_read_as_utf8() -> None:
    sniffed = charset.detect("text/html; charset=x-klingon", b"<p>")
    assert sniffed == charset.Sniffed("utf-8", "default", "x-klingon")


def test_header_charset_needs_only_the_bom_bytes() -> None:
    assert charset.bytes_needed("text/html; charset=utf-8") == 3
    assert charset.bytes_needed("text/html") == charset.bytes_needed("text/html; charset=bogus") == 1024


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("utf-8", True),
        ("cp932", True),
        ("euc_jp", True),
        ("cp1252", True),
        ("utf-16-le", False),
        ("utf-16-be", False),
        ("iso2022_jp", False),
    ],
)
def test_is_ascii_compatible(codec: str, expected: bool) -> None:
    assert charset.is_ascii_compatible(codec) is expected


class Upper:
    """A stand-in UTF-8 stream transform whose effect is visible."""

    def __init__(self) -> None:
        self.seen = b""

    def feed(self, data: bytes) -> bytes:
        self.seen += data
        return data.upper()

    def close(self) -> bytes:
        return "<p>同意</p>".encode()


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "iso2022_jp"])
def test_transcoder_round_trips_at_every_split(codec: str) -> None:
    text = "<html><title>求人 歯科衛生士</title><body>応募</body></html>"
    data = text.encode(codec)
    for cut in range(len(data) + 1):
        inner = Upper()
        t = Transcoder(inner, codec)
        out = t.feed(data[:cut]) + t.feed(data[cut:]) + t.close()
        assert inner.seen == text.encode("utf-8")
        assert out.decode(codec) == text.upper() + "<p>同意</p>"


def test_transcoder_keeps_bom_and_replaces_bad_bytes() -> None:
    data = "\ufeff<p>a</p>".encode("utf-16-le") + b"\x00"  # an odd trailing byte
    t = Transcoder(Upper(), "utf-16-le")
    out = t.feed(data) + t.close()
    assert out == "\ufeff<P>A</P>\ufffd<p>同意</p>".encode("utf-16-le")


# -- the <meta> prescan against html5lib's, which shares no code with gate ---------------------------
HEAD_PIECES = [
    b"<!doctype html>",
    b"<html lang=ja>",
    b"<head>",
    b"<!-- c -->",
    b"<!-- <meta charset=euc-jp> -->",
    b"<!-- a > b <meta charset=euc-jp> -->",
    b"<title>x</title>",
    b'<meta charset="shift_jis">',
    b"<meta charset=euc-jp>",
    b"<META CHARSET='utf-8'>",
    b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">',
    b'<meta content="text/html; charset=euc-jp">',
    b'<meta name="viewport" content="width=device-width">',
    b"<script>var a='<meta charset=euc-jp>'</script>",
    b"<link rel=stylesheet href=/a.css>",
    b"text ",
    b"</p>",
    b"<p class='a>b'>",
    b"<?xml version='1.0'?>",
    b"<meta charset=utf-16>",
    b"<meta charset=bogus>",
    b'<a href=x title="<meta charset=euc-jp>">',
    b"<!>",
    b"< p>",
    b"<meta charset = 'iso-2022-jp' >",
]


def html5lib_prescan(head: bytes) -> str | None:
    from html5lib._inputstream import EncodingParser

    found = EncodingParser(head).getEncoding()
    if found is None:
        return None
    name = "utf-8" if found.name in ("utf-16be", "utf-16le") else found.name  # as the spec's prescan ends
    return charset.lookup(name)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(HEAD_PIECES), max_size=10))
def test_the_prescan_finds_what_html5libs_finds(pieces):
    head = b"".join(pieces)[: charset.PRESCAN_BYTES]  # cut anywhere, as the first 1024 bytes are
    assert charset.prescan(head) == html5lib_prescan(head)


def test_meta_then_a_slash_is_a_meta_as_the_spec_reads_it():
    # html5lib's prescan wants whitespace after "<meta"; WHATWG's, and Chromium's, take "/" as well.
    assert charset.prescan(b"<meta/charset=euc-jp>") == "euc_jp"
