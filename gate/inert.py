"""Start tags that can reach no host but the page's own, passed by the scan that finds them.

On a list page most stops of the rewriter are tags like ``<img src="/photos/123.jpg" alt="…">``: every
URL new, so no decision is remembered, and each one cost an attribute parse, URL parses and a decision
that always came out "unchanged". ``html_end`` is ``htmlstream.boring_html_end`` that also passes such
a tag, without reading it further, when the rewriter may trust it (``first_party``).

A tag is inert here when all of this holds, read on the page's bytes:
- its name is one of INERT_NAMES: elements the rewriter handles by their attributes alone (no held
  content, no form detection, no change of tokenizer state, not base/meta/link/script/frames/objects);
- every attribute the rewriter reads as a URL (URL_ATTRS) has no value or a plain one: ASCII letters,
  digits and ``-._~?#=+;@!$*()%[],/`` (and spaces inside quotes), never "//" — so no scheme (no ":"),
  no authority, no backslash, no character reference (no "&"), nothing a URL parser strips or
  removes (controls, tab, newline), no byte above 0x7F. Such a value resolves against the base to
  the base's own host;
- no other attribute is one the rewriter reads (event handlers, style, ping, srcdoc, content: the
  risky names of htmlstream's boring scan; a URL attribute with another value is never read as a
  plain attribute, codebase included, which the boring scan does not list).

``first_party`` says when such a URL cannot matter: the current base is http(s) on the page's own host
(no <base>, or one on the page's host), the host is a plain name (no trailing dot), no vendor's hosts or
domains in the registry cover that host (then none of its URLs names a vendor, whatever the path), and
the reader is the page itself (depth 0: a nested reading's remembered decision must record that it read
the base). Then the slow path would find no tag, no undeclared host and nothing to strip, and send the
tag's bytes unchanged: tests/test_inert.py checks both claims.

INERT_HTML is the definition; gate/_fastscan.c's inert_html is the same scan in C.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from . import htmlstream as hs
from . import urls
from .vendors import Registry

INERT_NAMES = ("img", "source", "video", "audio", "track")
URL_ATTRS = ("srcset", "src", "poster", "href", "data", "background", "codebase", "xlink:href", "formaction", "action")

_DELIM = rb"(?=[\t\n\f\r />=])"
_PLAIN = rb"(?:[A-Za-z0-9\-._~?#=+;@!$*()%\[\],]|/(?!/))"  # a plain byte; "/" but never "//"
_PLAIN_QUOTED = rb"(?:[A-Za-z0-9\-._~?#=+;@!$*()%\[\], ]|/(?!/))"
_PLAIN_VALUE = rb'(?:"' + _PLAIN_QUOTED + rb'*+"|\'' + _PLAIN_QUOTED + rb"*+'|" + _PLAIN + rb"*+(?=[\t\n\f\r >]))"
_URL_NAME = rb"(?:" + b"|".join(re.escape(a.encode()) for a in URL_ATTRS) + rb")" + _DELIM
_INERT_ATTR = (
    rb"[\t\n\f\r /]*+(?:"
    + _URL_NAME
    + rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"
    + _PLAIN_VALUE
    + rb"|(?![\t\n\f\r ]*+=))"
    + rb"|(?!"
    + hs._RISKY_ATTR
    + rb"|"
    + _URL_NAME
    + rb")"
    + hs._NAME_FIRST
    + hs._NAME_REST
    + hs._ASSIGN
    + rb")"
)
_INERT_TAG = (
    rb"<(?:"
    + b"|".join(n.encode() for n in INERT_NAMES)
    + rb")(?=[\t\n\f\r />])(?>"
    + _INERT_ATTR
    + rb")*+[\t\n\f\r /]*+>"
)
# BORING_HTML's run, where an inert start tag is one more thing the run may hold.
INERT_HTML = re.compile(
    rb"(?:" + hs.BORING_HTML.pattern[len(rb"(?:") : -len(rb")*+")] + rb"|" + _INERT_TAG + rb")*+",
    re.IGNORECASE,
)

_inert_html_c: Callable[[bytes, int], int] | None
try:  # the same scan in C (gate/_fastscan.c)
    from ._fastscan import inert_html as _inert_html_c
except ImportError:  # pragma: no cover - depends on the install
    _inert_html_c = None


def html_end_py(buf: bytes, pos: int) -> int:
    return INERT_HTML.match(buf, pos).end()  # type: ignore[union-attr]  # "*+" always matches


# ``INERT_HTML.match(buf, pos).end()``, in C when the extension is built.
html_end = _inert_html_c if _inert_html_c is not None else html_end_py

_covered: dict[tuple[int, str], tuple[Registry, bool]] = {}


def _host_clean(registry: Registry, host: str) -> bool:
    """No vendor's host or domain (with or without a path) is ``host`` or a domain above it."""
    key = (id(registry), host)
    hit = _covered.get(key)
    if hit is not None and hit[0] is registry:
        return hit[1]
    clean, h = True, host
    while h:
        if registry.matcher.declares_host(h):
            clean = False
            break
        dot = h.find(".")
        h = h[dot + 1 :] if dot >= 0 else ""
    if len(_covered) > 256:
        _covered.clear()
    _covered[key] = (registry, clean)  # the registry is held: its id is not reused while the entry lives
    return clean


def first_party(registry: Registry, base: urls.URL, page: urls.URL) -> bool:
    """May a page's reader at depth 0, under ``base``, pass inert tags unread (module docstring)?"""
    host = page.host
    return (
        base.host == host
        and base.scheme in ("https", "http")
        and bool(host)
        and not host.endswith(".")
        and _host_clean(registry, host)
    )
