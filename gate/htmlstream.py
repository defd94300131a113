"""Byte-level pieces of a WHATWG HTML tokenizer, for a streaming rewriter that copies what it does
not touch verbatim. stdlib only.

Works on the page's own bytes. That is exact for every ASCII-compatible encoding in which markup
bytes (< > " ' = / - ! and ASCII letters after '<') never occur inside a multi-byte character: UTF-8,
Shift_JIS / cp932 (trail bytes start at 0x40), EUC-JP, the single-byte codepages. The proxy transcodes
the others (UTF-16, ISO-2022-JP) to UTF-8 first.

The regexes use possessive quantifiers and atomic groups (Python 3.11+) so that no input can make
them backtrack: every scan is linear.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from html.entities import html5 as _HTML5
from typing import NamedTuple


class State(IntEnum):
    """Where a reader of the page is between two reads: in text, copying or dropping content up to
    its end (a comment, raw text, script data, an oversized tag), holding an element whole until its
    end tag, or after <plaintext> (nothing after it is markup)."""

    DATA = 0
    STREAM = 1
    UNIT = 2
    PLAINTEXT = 3


class StreamKind(IntEnum):
    """Content streamed through (or dropped) until its end: what ends it."""

    COMMENT = 0  # "-->" / "--!>"
    BOGUS = 1  # ">"
    RAW = 2  # the element's end tag (RAWTEXT / RCDATA)
    SCRIPT = 3  # "</script" in the script data states
    TAG = 4  # ">" outside quoted values (a tag past the carry-over cap)


class UnitKind(IntEnum):
    """An element held whole: a script, a style sheet, or content read both as text and as markup."""

    SCRIPT = 0
    STYLE = 1
    DUAL = 2


class TagState(IntEnum):
    """The tag states tag_scan follows (WHATWG 13.2.5.8 ff.)."""

    NAME = 0  # tag name
    ANAME = 1  # attribute name
    UNQ = 2  # unquoted attribute value
    DQ = 3  # double-quoted value
    SQ = 4  # single-quoted value
    BEFORE = 5  # before attribute name
    AFTER = 6  # after attribute name
    EQ = 7  # before attribute value


class Attr(NamedTuple):
    """One attribute of a tag: lower-case name, raw value with its quotes (None: no value), and where
    it starts and ends in the tag's attribute bytes."""

    name: bytes
    value: bytes | None
    start: int
    end: int


class Tag(NamedTuple):
    """A complete start or end tag in a buffer."""

    start: int  # index of its "<"
    end: int  # index just past its ">"
    name: str  # lower case
    closing: bool  # an end tag
    attrs_at: int  # index where its attribute bytes start
    raw_attrs: bytes
    self_closing: bool


_NAME_FIRST = rb"[^\t\n\f\r />]"
_NAME_REST = rb"[^\t\n\f\r />=]*+"
# A value that opens with a quote is quoted, so it needs its closing quote (a prefix of a tag cut in
# the middle of a quoted value must never match as a complete tag).
_VALUE = rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)"
# After a name, "=" always starts the value: if the value is incomplete the whole tag is (never let
# the engine re-read "=" as the first character of another attribute name).
_ASSIGN = rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb"|(?![\t\n\f\r ]*+=))"
_ATTR = rb"[\t\n\f\r /]*+" + _NAME_FIRST + _NAME_REST + _ASSIGN

# A complete start or end tag: group 1 "/" for end tags, 2 the name, 3 the attributes.
TAG = re.compile(rb"<(/?)([a-zA-Z][^\t\n\f\r />]*+)((?:" + _ATTR + rb")*+)([\t\n\f\r /]*+)>")


def read_tag_py(buf: bytes, pos: int) -> Tag | None:
    """The complete tag at ``pos`` (a "<"), or None when ``buf`` does not hold one whole there. The
    definition; read_tag is the same in C when the extension is built."""
    m = TAG.match(buf, pos)
    if m is None:
        return None
    slash, name, attrs, tail = m.groups()
    lowered = _NAMES.get(name)
    if lowered is None:
        lowered = name.decode("ascii", "replace").lower()
        if len(_NAMES) < 4096:  # tag names repeat; a page of made-up names cannot grow this past the cap
            _NAMES[name] = lowered
    # tuple.__new__ directly: the NamedTuple's own __new__ is one more Python call per tag
    return _new_tuple(Tag, (pos, m.end(), lowered, bool(slash), m.start(3), attrs, tail.endswith(b"/")))


_NAMES: dict[bytes, str] = {}
_new_tuple = tuple.__new__

# One attribute inside group 3 of TAG: name, and the raw value with its quotes (or None).
ATTR = re.compile(
    rb"[\t\n\f\r /]*+(" + _NAME_FIRST + _NAME_REST + rb")(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(" + _VALUE + rb"))?"
)

# Start tags that may load, execute, change how what follows is tokenized, or mark where we inject.
INTERESTING_START = (
    "script style noscript iframe frame frameset img image link source track embed object input video "
    "audio base meta textarea title xmp noembed noframes plaintext svg math select head body portal "
    "fencedframe applet template"
).split()
INTERESTING_END = "body html svg math select template".split()
# Attributes that can load or run something on ANY element; `href` is harmless when it plainly
# navigates (starts with / # ? http(s):// mailto: tel: ./ ../).
_RISKY_ATTR = (
    rb"(?:on[^\t\n\f\r />=]*+|style|ping|background|src|srcset|poster|data|action|formaction|"
    rb"xlink:href|href|content|srcdoc)(?=[\t\n\f\r />=])"
)
_SAFE_HREF = rb"(?:/|#|\?|https?://|mailto:|tel:|\.\.?/)"
_SAFE_ATTR = (
    rb"[\t\n\f\r /]*+(?:"
    rb"href[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\""
    + _SAFE_HREF
    + rb"[^\"]*+\"|'"
    + _SAFE_HREF
    + rb"[^']*+'|"
    + _SAFE_HREF
    + rb"[^\t\n\f\r >]*+)(?=[\t\n\f\r />])"
    rb"|(?!" + _RISKY_ATTR + rb")" + _NAME_FIRST + _NAME_REST + _ASSIGN + rb")"
)


def _names(names: list[str]) -> bytes:
    return b"|".join(n.encode() for n in names)


# In HTML content: a maximal run of text, comments and tags that need no decision. Stops at anything
# else, and at a comment the buffer does not hold whole.
BORING_HTML = re.compile(
    rb"(?:[^<]++"
    rb"|<(?=[^a-zA-Z!/?])"
    rb"|<!--(?:-?>|[\s\S]*?--!?>)"  # a comment: "<!-->", "<!--->", or to the first "-->" / "--!>"
    rb"|<!(?!--)[^>]*+>|<\?[^>]*+>"  # a bogus comment (doctype, "<?", CDATA outside foreign content)
    rb"|<(?!(?:"
    + _names(INTERESTING_START)
    + rb")[\t\n\f\r />])[a-zA-Z][^\t\n\f\r />]*+(?>"
    + _SAFE_ATTR
    + rb")*+[\t\n\f\r /]*+>"
    rb"|</(?!(?:"
    + _names(INTERESTING_END)
    + rb")[\t\n\f\r />])[a-zA-Z][^\t\n\f\r />]*+(?>"
    + _ATTR
    + rb")*+[\t\n\f\r /]*+>"
    rb")*+",
    re.IGNORECASE,
)
try:  # the same scans in C (gate/_fastscan.c), built when a compiler was there at install time
    from . import _fastscan
except ImportError:  # pragma: no cover - depends on the install
    _fastscan = None  # type: ignore[assignment]
_boring_html_c: Callable[[bytes, int], int] | None = _fastscan.boring_html if _fastscan is not None else None
read_tag: Callable[[bytes, int], Tag | None] = read_tag_py
if _fastscan is not None:
    _fastscan.set_tag_type(Tag, _NAMES)
    read_tag = _fastscan.read_tag  # the tag at every stop of the rewriter: in C when built


def boring_html_end(buf: bytes, pos: int) -> int:
    """``BORING_HTML.match(buf, pos).end()``, in C when the extension is built."""
    if _boring_html_c is not None:
        return _boring_html_c(buf, pos)
    m = BORING_HTML.match(buf, pos)
    assert m is not None  # a starred pattern: it always matches
    return m.end()


# In foreign content every tag matters (the open-element stack decides when it ends): skip text only.
BORING_TEXT = re.compile(rb"(?:[^<]++|<(?=[^a-zA-Z!/?]))*+")

COMMENT_END = re.compile(rb"--!?>")
BOGUS_END = re.compile(rb">")
_SCRIPT_TOKENS = re.compile(rb"<!--|-->|</script[\t\n\f\r />]|<script[\t\n\f\r />]", re.IGNORECASE)


def rawtext_end(name: str) -> re.Pattern[bytes]:
    """Where RAWTEXT/RCDATA content of ``name`` ends: its appropriate end tag."""
    return re.compile(rb"</" + re.escape(name.encode()) + rb"[\t\n\f\r />]", re.IGNORECASE)


RAWTEXT_END = {n: rawtext_end(n) for n in "style xmp iframe noembed noframes noscript textarea title script".split()}


# Script data states (WHATWG 13.2.5.4 ff.): normal, escaped (after <!--), double escaped
# (after <!--<script>). Only </script> in normal or escaped state ends the element.
class ScriptState(IntEnum):
    NORMAL = 0
    ESCAPED = 1
    DOUBLE = 2


SCRIPT_NORMAL, SCRIPT_ESCAPED, SCRIPT_DOUBLE = ScriptState.NORMAL, ScriptState.ESCAPED, ScriptState.DOUBLE


def script_end_py(buf: bytes, pos: int, state: int) -> tuple[int, int, int]:
    """Scan script data from ``pos``. Returns (index of the ending "</script", state, resume_pos):
    index -1 when the end is not in ``buf`` yet; then resume at resume_pos with the state given.
    The definition; script_end is the same scan in C when the extension is built."""
    done = pos  # scanning resumes after the last token read, never reading one twice
    for m in _SCRIPT_TOKENS.finditer(buf, pos):
        tok = m.group()[:4].lower()
        start, done = m.start(), m.end()
        if tok == b"<!--":
            if state == SCRIPT_NORMAL:
                # Whether "<!--" begins an escape hangs on the bytes after it ("<!-->", "<!--->"): at
                # the buffer's end, read this token again once they are here.
                if len(buf) <= start + 4 or (buf[start + 4 : start + 5] == b"-" and len(buf) <= start + 5):
                    return -1, state, start
                state = SCRIPT_ESCAPED
                # "<!-->" and "<!--->" return to normal at once: look for "-->" overlapping it.
                if buf.startswith(b"-->", start + 2) or buf.startswith(b"-->", start + 3):
                    state = SCRIPT_NORMAL
        elif tok == b"-->":
            if state != SCRIPT_NORMAL:
                state = SCRIPT_NORMAL
        elif tok == b"</sc":
            if state == SCRIPT_DOUBLE:
                state = SCRIPT_ESCAPED
            else:
                return start, state, start
        elif state == SCRIPT_ESCAPED:  # "<script" in escaped state
            state = SCRIPT_DOUBLE
    # Keep a tail long enough to hold a token split across chunks.
    return -1, state, max(done, len(buf) - 9)


ScriptEnd = Callable[[bytes, int, int], tuple[int, int, int]]
script_end: ScriptEnd = _fastscan.script_end if _fastscan is not None else script_end_py  # in C when built


def parse_attrs(raw: bytes) -> tuple[Attr, ...]:
    """Each attribute of a tag's attribute bytes, in order, duplicates kept."""
    out = []
    for m in ATTR.finditer(raw):
        if m.end() == m.start():
            break
        out.append(Attr(m.group(1).lower(), m.group(2), m.start(), m.end()))
    return tuple(out)


def first_value(attrs: Sequence[Attr], key: bytes) -> bytes | None:
    """The raw value of the first attribute called ``key`` (b"" when it has none), or None: the
    parser drops the later duplicates."""
    for a in attrs:
        if a.name == key:
            return a.value if a.value is not None else b""
    return None


_REF = re.compile(r"&(#[xX][0-9a-fA-F]+;?|#[0-9]+;?|[a-zA-Z][a-zA-Z0-9]*;?)")
_LONGEST_NAMED = max(len(k) for k in _HTML5)


def _replace_ref(m: re.Match[str]) -> str:
    body, s, end = m.group(1), m.string, m.end()
    if body[0] == "#":
        return html.unescape(m.group())
    if body.endswith(";") and body in _HTML5:
        return _HTML5[body]
    # legacy refs without ';': the longest known prefix, unless "=" or an alphanumeric follows it
    for i in range(min(len(body), _LONGEST_NAMED), 1, -1):
        name = body[:i]
        if name in _HTML5 and not name.endswith(";"):
            nxt = body[i] if i < len(body) else (s[end] if end < len(s) else "")
            if nxt == "=" or nxt.isalnum():
                return m.group()
            return _HTML5[name] + body[i:]
    return m.group()


def unescape_attr(value: str) -> str:
    """Decode character references the way the attribute-value states do."""
    return _REF.sub(_replace_ref, value) if "&" in value else value


def attr_text(raw: bytes | None, encoding: str) -> str:
    """The decoded value of a raw attribute value (quotes removed)."""
    if raw is None:
        return ""
    if raw[:1] in (b'"', b"'"):
        raw = raw[1:-1]
    return unescape_attr(raw.decode(encoding, "replace"))


_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)", re.DOTALL)


def css_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            cp = int(m.group(1), 16)
            return chr(cp) if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF else "\ufffd"
        return m.group(2) if m.group(2) != "\n" else ""

    return _CSS_ESCAPE.sub(one, text) if "\\" in text else text


_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))|@import\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


def css_urls(text: str) -> list[str]:
    """The URLs a piece of CSS fetches (url(), @import), after CSS escapes are decoded."""
    text = css_unescape(text)
    if "url" not in text.lower() and "@import" not in text.lower():
        return []
    return [next(g for g in m.groups() if g is not None) for m in _CSS_URL.finditer(text)]


def escape_attr(value: str) -> str:
    """Escape for a double-quoted attribute value."""
    return value.replace("&", "&amp;").replace('"', "&quot;")


# -- an oversized tag, read as it streams (only used past the carry-over cap) -----------------------
TAG_NAME_STOP = re.compile(rb"[\t\n\f\r />]")
_ANAME_STOP = re.compile(rb"[\t\n\f\r />=]")
_UNQ_STOP = re.compile(rb"[\t\n\f\r >]")
_SKIP_SEP = re.compile(rb"[\t\n\f\r /]*")
_SKIP_WS = re.compile(rb"[\t\n\f\r ]*")
_STOPS = {TagState.NAME: TAG_NAME_STOP, TagState.ANAME: _ANAME_STOP, TagState.UNQ: _UNQ_STOP}


def tag_name(raw: bytes) -> str:
    """The lower-case name at the start of ``raw`` (the bytes after "<" or "</"), as far as it goes."""
    stop = TAG_NAME_STOP.search(raw)
    return raw[: stop.start() if stop else len(raw)].decode("ascii", "replace").lower()


def tag_scan(buf: bytes, pos: int, state: TagState) -> tuple[int, TagState, int]:
    """Follow the tag states from ``pos`` (just after "<x" for TagState.NAME). Returns (index just
    past the closing ">" or -1, state, resume position)."""
    n = len(buf)
    while pos < n:
        stop_at = _STOPS.get(state)
        if stop_at is not None:
            stop = stop_at.search(buf, pos)
            if stop is None:
                return -1, state, n
            c, pos = buf[stop.start() : stop.start() + 1], stop.start() + 1
            if c == b">":
                return pos, state, pos
            if c == b"=":
                state = TagState.EQ
            elif state == TagState.ANAME and c != b"/":
                state = TagState.AFTER
            else:
                state = TagState.BEFORE
        elif state in (TagState.DQ, TagState.SQ):
            i = buf.find(b'"' if state == TagState.DQ else b"'", pos)
            if i < 0:
                return -1, state, n
            pos, state = i + 1, TagState.BEFORE
        else:  # before, after, eq
            m = (_SKIP_SEP if state == TagState.BEFORE else _SKIP_WS).match(buf, pos)
            pos = m.end() if m else pos
            if pos >= n:
                return -1, state, n
            c = buf[pos : pos + 1]
            if c == b">":
                return pos + 1, state, pos + 1
            if state == TagState.AFTER and c in (b"/", b"="):
                state, pos = (TagState.BEFORE if c == b"/" else TagState.EQ), pos + 1
            elif state == TagState.EQ:
                if c == b'"':
                    state, pos = TagState.DQ, pos + 1
                elif c == b"'":
                    state, pos = TagState.SQ, pos + 1
                else:
                    state = TagState.UNQ
            else:
                state, pos = TagState.ANAME, pos + 1
    return -1, state, pos


# -- content streamed through until its end ------------------------------------------------------------
@dataclass
class Stream:
    """Content being copied through (keep) or dropped, until its end is found."""

    kind: StreamKind
    keep: bool
    name: str = ""  # RAW: the element whose end tag ends it
    sub: int = SCRIPT_NORMAL  # SCRIPT: the script data state
    tag_state: TagState = TagState.NAME  # TAG: where in the tag
    then: str = ""  # TAG: the element whose content follows ("" = none)

    def then_stream(self) -> Stream | None:
        """What streams after this one ends: the content of the element an oversized tag opened."""
        if self.kind != StreamKind.TAG or not self.then:
            return None
        if self.then == "script":
            return Stream(StreamKind.SCRIPT, self.keep)
        return Stream(StreamKind.RAW, self.keep, name=self.then)


def stream_end(buf: bytes, pos: int, st: Stream, final: bool) -> tuple[int, bool]:
    """How far ``st`` runs in ``buf`` from ``pos``: (end, whether it ended there). Not ended, ``end``
    is where to read again once more bytes are here (a token may be cut at the buffer's end)."""
    n = len(buf)
    if st.kind == StreamKind.COMMENT or st.kind == StreamKind.BOGUS:
        m = (COMMENT_END if st.kind == StreamKind.COMMENT else BOGUS_END).search(buf, pos)
        return (m.end() if m else (n if final else max(pos, n - 3))), m is not None or final
    if st.kind == StreamKind.TAG:
        end, st.tag_state, resume = tag_scan(buf, pos, st.tag_state)
        return (end if end >= 0 else (n if final else resume)), end >= 0 or final
    # raw text or script data: up to the end tag, which is read as a tag
    if st.kind == StreamKind.SCRIPT:
        idx, st.sub, resume = script_end(buf, pos, st.sub)
    else:
        mm = RAWTEXT_END[st.name].search(buf, pos)
        idx = mm.start() if mm else -1
        resume = max(pos, n - len(st.name) - 3)
    if idx < 0:
        return (n, True) if final else (resume, False)
    tag = TAG.match(buf, idx)
    if tag is None and not final:
        return idx, False
    return (tag.end() if tag else n), True


def content_end(buf: bytes, pos: int, name: str, sub: int) -> tuple[int, int, int]:
    """Where the content of the element ``name`` (script data in state ``sub``, or raw text) ends:
    (index of its end tag or -1, script state, where to read again). <plaintext> never ends."""
    if name == "script":
        return script_end(buf, pos, sub)
    pattern = RAWTEXT_END.get(name)
    mm = pattern.search(buf, pos) if pattern else None
    return (mm.start() if mm else -1), sub, max(pos, len(buf) - len(name) - 3)
