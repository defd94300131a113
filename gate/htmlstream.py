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
from html.entities import html5 as _HTML5

WS = rb"\t\n\f\r "
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
try:  # the same scan in C (gate/_fastscan.c), built when a compiler was there at install time
    from ._fastscan import boring_html as _boring_html_c
except ImportError:  # pragma: no cover - depends on the install
    _boring_html_c = None


def boring_html_end(buf: bytes, pos: int) -> int:
    """``BORING_HTML.match(buf, pos).end()``, in C when the extension is built."""
    return _boring_html_c(buf, pos) if _boring_html_c is not None else BORING_HTML.match(buf, pos).end()


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
SCRIPT_NORMAL, SCRIPT_ESCAPED, SCRIPT_DOUBLE = 0, 1, 2


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


try:  # the same scan in C (gate/_fastscan.c)
    from ._fastscan import script_end
except ImportError:  # pragma: no cover - depends on the install
    script_end = script_end_py


def parse_attrs(raw: bytes) -> tuple[tuple[bytes, bytes | None, int, int], ...]:
    """(lower-case name, raw value or None, start, end) for each attribute, in order, duplicates kept."""
    out = []
    for m in ATTR.finditer(raw):
        if m.end() == m.start():
            break
        out.append((m.group(1).lower(), m.group(2), m.start(), m.end()))
    return tuple(out)


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
_TAG_NAME_STOP = re.compile(rb"[\t\n\f\r />]")
_ANAME_STOP = re.compile(rb"[\t\n\f\r />=]")
_UNQ_STOP = re.compile(rb"[\t\n\f\r >]")
_SKIP_SEP = re.compile(rb"[\t\n\f\r /]*")
_SKIP_WS = re.compile(rb"[\t\n\f\r ]*")


def tag_scan(buf: bytes, pos: int, state: str) -> tuple[int, str, int]:
    """Follow the tag states from ``pos`` (just after "<x" for state "name"). Returns (index just
    past the closing ">" or -1, state, resume position)."""
    n = len(buf)
    while pos < n:
        if state in ("name", "aname", "unq"):
            stop = (_TAG_NAME_STOP if state == "name" else _ANAME_STOP if state == "aname" else _UNQ_STOP).search(
                buf, pos
            )
            if stop is None:
                return -1, state, n
            c, pos = buf[stop.start() : stop.start() + 1], stop.start() + 1
            if c == b">":
                return pos, state, pos
            state = "eq" if c == b"=" else "after" if (state == "aname" and c != b"/") else "before"
        elif state in ("dq", "sq"):
            i = buf.find(b'"' if state == "dq" else b"'", pos)
            if i < 0:
                return -1, state, n
            pos, state = i + 1, "before"
        else:  # before, after, eq
            pos = (_SKIP_SEP if state == "before" else _SKIP_WS).match(buf, pos).end()
            if pos >= n:
                return -1, state, n
            c = buf[pos : pos + 1]
            if c == b">":
                return pos + 1, state, pos + 1
            if state == "after" and c in (b"/", b"="):
                state, pos = ("before" if c == b"/" else "eq"), pos + 1
            elif state == "eq":
                state, pos = {b'"': ("dq", pos + 1), b"'": ("sq", pos + 1)}.get(c, ("unq", pos))
            else:
                state, pos = "aname", pos + 1
    return -1, state, pos
