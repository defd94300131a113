"""Header rules of the request path: what a rewritten page's response headers become (identity, no
validators, private to this visitor, Gate-Tags), which cookies the origin must not see, the
Gate-Consent header it receives, and the script nonce read from the origin's CSP."""

from __future__ import annotations

import re
from collections.abc import Callable

from .consent import COOKIE_NAME, Consent
from .vendors import Registry

# What the rewritten body no longer matches: its length, coding, validators and byte ranges.
_PAGE_DROP = frozenset(
    {
        b"content-length",
        b"content-encoding",
        b"etag",
        b"last-modified",
        b"accept-ranges",
        b"content-md5",
        b"digest",
        b"cache-control",
        b"vary",
    }
)
_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/=_-]+)'")


def page_headers(
    headers: list[tuple[bytes, bytes]],
    carried: frozenset[str],
    allowed: frozenset[str],
    compress: bool = False,
    coding: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """A rewritten page's headers: no validators, private to this visitor, and Gate-Tags; the coding
    gate compresses it in (``coding``, None: identity), and Vary: Accept-Encoding when it may."""
    cache_control = [v.decode("latin-1") for k, v in headers if k == b"cache-control"]
    vary = [v.decode("latin-1") for k, v in headers if k == b"vary"]
    out = [(k, v) for k, v in headers if k not in _PAGE_DROP]
    out.append((b"cache-control", private_cache_control(cache_control).encode("latin-1")))
    out.append((b"vary", vary_cookie(vary, ("Accept-Encoding",) if compress else ()).encode("latin-1")))
    if coding is not None:
        out.append((b"content-encoding", coding.encode("latin-1")))
    kept, stripped = ",".join(sorted(carried & allowed)), ",".join(sorted(carried - allowed))
    out.append((b"gate-tags", f"kept={kept}; stripped={stripped}".encode("latin-1")))
    return out


_DIRECTIVE = re.compile(r'\s*([^=,\s]+)(?:\s*=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')


def private_cache_control(values: list[str]) -> str:
    """The origin's Cache-Control made private: shared-cache directives dropped, the rest kept."""
    kept = ["private"]
    for value in values:
        for m in _DIRECTIVE.finditer(value):
            name = m.group(1).lower()
            if name not in ("public", "private", "s-maxage", "proxy-revalidate"):
                kept.append(m.group(0).strip().rstrip(",").strip())
    return ", ".join(kept)


def vary_cookie(values: list[str], more: tuple[str, ...] = ()) -> str:
    """The origin's Vary plus Cookie and Accept-Language (the banner's language follows it), and
    ``more`` (Accept-Encoding, when gate compresses pages)."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if "*" in names:
        return "*"
    lower = {n.lower() for n in names}
    names += [n for n in ("Cookie", "Accept-Language", *more) if n.lower() not in lower]
    return ", ".join(names)


def cookie_filter(registry: Registry, allowed: frozenset[str]) -> Callable[[str], bool]:
    """Cookies the origin must not see: gate's own, and those of every tag this visitor refuses (a
    server-side integration could otherwise read _fbp or _ga the visitor said no to)."""
    refused = [t for t in registry.tags.values() if t.id not in allowed and t.cookies]

    def drop(name: str) -> bool:
        return name == COOKIE_NAME or any(t.cookie_matches(name) for t in refused)

    return drop


def consent_header(consent: Consent) -> str:
    """The Gate-Consent request header the origin receives, e.g.
    ``decided=1; improvement=1; advertising=0; suggestions=0; content=0``: server-side tags
    (conversion APIs) must honour it, gate cannot see them."""
    parts = [f"decided={int(consent.decided)}"] + [f"{p}={int(ok)}" for p, ok in consent.purposes.items()]
    if consent.vendors_refused:
        parts.append("vendors_refused=" + ",".join(sorted(consent.vendors_refused)))
    return "; ".join(parts)


def script_nonce(policies: list[str]) -> str | None:
    """The nonce the origin's CSP allows scripts with, so the banner's script may run too."""
    for policy in policies:
        directives = {d.strip().split(" ", 1)[0].lower(): d for d in policy.split(";") if d.strip()}
        for name in ("script-src-elem", "script-src", "default-src"):
            if name in directives:
                m = _NONCE.search(directives[name])
                if m:
                    return m.group(1)
                break
    return None
