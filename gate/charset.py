"""Which encoding a browser would read an HTML response in, and a transcoder for the few it cannot
rewrite byte-wise.

The order is the browser's (WHATWG "encoding sniffing"): a byte order mark wins, then the
Content-Type charset, then the <meta> prescan over the first 1024 bytes, then UTF-8. Reading the page
the way the browser will is what matters for gating: a tag we decode differently is a tag we may miss.
Stdlib only.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

from .transform import ByteTransform

PRESCAN_BYTES = 1024
DEFAULT = "utf-8"

# WHATWG labels -> Python codec names. Only encodings a Japanese site plausibly serves and that
# Python decodes the way browsers do; anything else reads as UTF-8 and is flagged.
_LABELS: dict[str, str] = {}
for _codec, _labels in {
    "utf-8": "utf-8 utf8 unicode-1-1-utf-8 unicode11utf8 unicode20utf8 x-unicode20utf8",
    "cp932": "shift_jis shift-jis sjis x-sjis windows-31j ms932 ms_kanji csshiftjis",
    "euc_jp": "euc-jp x-euc-jp cseucpkdfmtjapanese",
    "iso2022_jp": "iso-2022-jp csiso2022jp",
    # Browsers read all of these as windows-1252.
    "cp1252": "windows-1252 cp1252 x-cp1252 latin1 l1 iso-8859-1 iso8859-1 iso88591 iso_8859-1 "
    "iso_8859-1:1987 iso-ir-100 cp819 ibm819 csisolatin1 us-ascii ascii ansi_x3.4-1968 "
    "iso-8859-15 iso8859-15 latin-9",
    "utf-16-le": "utf-16 utf-16le unicode ucs-2 csunicode iso-10646-ucs-2 unicodefeff",
    "utf-16-be": "utf-16be unicodefffe",
    "gb18030": "gbk gb2312 gb18030 chinese csgb2312 x-gbk",
    "big5hkscs": "big5 big5-hkscs cn-big5 x-x-big5 csbig5",
    "cp949": "euc-kr ks_c_5601-1987 windows-949 korean csksc56011987",
}.items():
    _LABELS.update(dict.fromkeys(_labels.split(), _codec))

_CT_CHARSET = re.compile(r";\s*charset\s*=\s*(\"?)([^\";\s]*)\1", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_SPACE = "\t\n\f\r "
_TAG_START = re.compile(r"</?[A-Za-z]")


class Sniffed(NamedTuple):
    codec: str  # a Python codec name
    source: str  # "bom", "header", "meta" or "default"
    unknown_label: str | None = None  # a charset we were told but could not use (the proxy logs it)


def lookup(label: str) -> str | None:
    """The Python codec for a WHATWG encoding label, or None when unknown or unsupported."""
    return _LABELS.get(label.strip(_SPACE).lower())


# The label a rewritten page declares in its Content-Type (WHATWG names browsers know).
_CODEC_LABEL = {
    "utf-8": "utf-8",
    "cp932": "Shift_JIS",
    "shift_jis": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "iso2022_jp": "ISO-2022-JP",
    "cp1252": "windows-1252",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
}


def label_for(codec: str) -> str | None:
    """The WHATWG label for a Python codec name, or None when there is no sure one."""
    return _CODEC_LABEL.get(codec.lower())


def header_charset(content_type: str | None) -> str | None:
    m = _CT_CHARSET.search(content_type or "")
    return m.group(2) if m else None


def bytes_needed(content_type: str | None) -> int:
    """How many leading bytes sniffing needs: only the BOM's when the header names a usable charset."""
    label = header_charset(content_type)
    return 3 if label and lookup(label) else PRESCAN_BYTES


def detect(content_type: str | None, head: bytes) -> Sniffed:
    """The encoding of a response from its Content-Type and its first bytes (up to 1024 are read)."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return Sniffed(codec, "bom")
    unknown = None
    label = header_charset(content_type)
    if label:
        from_header = lookup(label)
        if from_header:
            return Sniffed(from_header, "header")
        unknown = label
    meta = prescan(head[:PRESCAN_BYTES])
    if meta:
        return Sniffed(meta, "meta", unknown)
    return Sniffed(DEFAULT, "default", unknown)


def sniff(content_type: str | None, head: bytes) -> str:
    """The Python codec name a browser would decode this response with."""
    return detect(content_type, head).codec


def is_ascii_compatible(codec: str) -> bool:
    """False for encodings where '<' is not the byte 0x3C (UTF-16) or bytes change meaning by state
    (ISO-2022-JP): those are rewritten through a Transcoder."""
    name = codecs.lookup(codec).name
    return not name.startswith(("utf-16", "utf-32", "iso2022"))


# -- the <meta> prescan (WHATWG 13.2.3.2), over bytes read as Latin-1 so positions stay byte offsets --
class _End(Exception):
    pass


def prescan(head: bytes) -> str | None:
    s = head.decode("latin-1")
    pos, n = 0, len(s)
    try:
        while pos < n:
            # Every step of the algorithm starts at a "<": the bytes before the next one are skipped
            # one by one by the spec, all at once here.
            pos = s.find("<", pos)
            if pos < 0:
                return None
            if s.startswith("<!--", pos):
                end = s.find("-->", pos + 2)
                if end < 0:
                    return None
                pos = end + 3
                continue
            low = s[pos : pos + 6].lower()
            if low[:5] == "<meta" and len(low) == 6 and low[5] in _SPACE + "/":
                pos, found = _meta(s, pos + 5)
                if found:
                    return found
                continue
            if _TAG_START.match(s, pos):
                while pos < n and s[pos] not in _SPACE + ">":
                    pos += 1
                while (attr := _attribute(s, pos)) is not None:
                    pos = attr[2]
                continue
            if s.startswith(("<!", "</", "<?"), pos):
                end = s.find(">", pos)
                if end < 0:
                    return None
                pos = end
            pos += 1
    except _End:
        return None
    return None


def _meta(s: str, pos: int) -> tuple[int, str | None]:
    seen: set[str] = set()
    got_pragma, need_pragma, charset = False, None, None
    while (attr := _attribute(s, pos)) is not None:
        name, value, pos = attr
        if name in seen:
            continue
        seen.add(name)
        if name == "http-equiv" and value == "content-type":
            got_pragma = True
        elif name == "content" and charset is None:
            charset = _charset_in_content(value)
            if charset is not None:
                need_pragma = True
        elif name == "charset":
            charset, need_pragma = value, False
    if need_pragma is None or (need_pragma and not got_pragma) or charset is None:
        return pos, None
    codec = lookup(charset)
    if codec and codec.startswith("utf-16"):
        codec = "utf-8"  # a page whose <meta> we could read as ASCII is not UTF-16
    return pos, codec


def _attribute(s: str, pos: int) -> tuple[str, str, int] | None:
    """(name, value, position after) of the next attribute, None at '>'; raises _End at the end."""
    n = len(s)

    def at(i: int) -> str:
        if i >= n:
            raise _End
        return s[i]

    while at(pos) in _SPACE + "/":
        pos += 1
    if at(pos) == ">":
        return None
    name = ""
    while True:
        c = at(pos)
        if c == "=" and name:
            pos += 1
            break
        if c in _SPACE:
            while at(pos) in _SPACE:
                pos += 1
            if at(pos) != "=":
                return name, "", pos
            pos += 1
            break
        if c in "/>":
            return name, "", pos
        name += c.lower()
        pos += 1
    while at(pos) in _SPACE:
        pos += 1
    quote = at(pos)
    if quote in "\"'":
        end = s.find(quote, pos + 1)
        if end < 0:
            raise _End
        return name, s[pos + 1 : end].lower(), end + 1
    if quote == ">":
        return name, "", pos
    start = pos
    while at(pos) not in _SPACE + ">":
        pos += 1
    return name, s[start:pos].lower(), pos


def _charset_in_content(value: str) -> str | None:
    """The WHATWG "extract a character encoding from a meta element" algorithm."""
    pos = 0
    while True:
        i = value.find("charset", pos)
        if i < 0:
            return None
        pos = i + 7
        while pos < len(value) and value[pos] in _SPACE:
            pos += 1
        if pos < len(value) and value[pos] == "=":
            break
    pos += 1
    while pos < len(value) and value[pos] in _SPACE:
        pos += 1
    if pos >= len(value):
        return None
    if value[pos] in "\"'":
        end = value.find(value[pos], pos + 1)
        return value[pos + 1 : end] if end >= 0 else None
    m = re.match(r"[^\t\n\f\r ;]+", value[pos:])
    return m.group(0) if m else None


# -- transcoding ------------------------------------------------------------------------------
class Transcoder:
    """A ByteTransform (gate.transform) wrapping a UTF-8 one for a page in ``codec``: input is decoded
    to UTF-8 for it and its output encoded back, both incrementally (a character may straddle two
    chunks).

    Undecodable input becomes U+FFFD, as the browser shows it; the round trip keeps every character
    but not necessarily every byte of ISO-2022-JP's escape sequences."""

    def __init__(self, inner: ByteTransform, codec: str) -> None:
        self.inner, self.codec = inner, codec
        self._decode = codecs.getincrementaldecoder(codec)("replace").decode
        self._inner_out = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._encode = codecs.getincrementalencoder(codec)("xmlcharrefreplace").encode

    def feed(self, data: bytes) -> bytes:
        text = self._decode(data)
        out = self.inner.feed(text.encode("utf-8")) if text else b""
        return self._encode(self._inner_out(out)) if out else b""

    def close(self) -> bytes:
        text = self._decode(b"", True)
        out = self.inner.feed(text.encode("utf-8")) if text else b""
        out += self.inner.close()
        return self._encode(self._inner_out(out, True), True)
