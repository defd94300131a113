"""The vendor cookies a consent decision expires.

When a visitor narrows or withdraws consent, the first-party cookies of every tag they now refuse are
expired in the same response (``Set-Cookie: _ga=; Max-Age=0; Path=/``), HttpOnly ones included: the
browser sends those to us too, and no client-side consent manager can touch them.

Only the names the visitor actually sent are expired (a pattern like ``_ga_*`` names no cookie by
itself). A cookie lives under (name, domain, path), and Chromium keeps a host-only cookie apart from a
``Domain=`` cookie on the same host, so each name is expired host-only and for every domain it may have
been set on: the host itself and its parents, down to (not including) a public suffix. The suffix list
is deliberately small (two-label suffixes common for our sites); an unknown suffix only costs a
header the browser ignores, since a browser refuses ``Domain=`` on a public suffix.

Why only on decisions, not on every page while a tag is refused: a refused tag is stripped from every
page and its cookies are already dropped from what the origin receives (headers.cookie_filter), so a
cookie left behind carries nothing anywhere through gate. Expiring at the decision is what the visitor
asked for; repeating it on every page would put Set-Cookie headers next to the origin's own (which
may legitimately set a cookie of the same name, e.g. a server-side tag the operator runs) and send the
same bytes on every response for nothing.

Core module: no starlette, no httpx.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

from .vendors import Registry, per_consent

# Two-label public suffixes: never a cookie domain. (Single labels, like "jp", never are either.)
PUBLIC_SUFFIXES = frozenset(
    {
        "co.jp",
        "ne.jp",
        "or.jp",
        "ac.jp",
        "go.jp",
        "ad.jp",
        "ed.jp",
        "gr.jp",
        "lg.jp",
        "com.au",
        "net.au",
        "org.au",
        "co.uk",
        "org.uk",
        "ac.uk",
        "gov.uk",
        "co.kr",
        "or.kr",
        "com.cn",
        "com.tw",
        "com.hk",
        "com.sg",
        "co.nz",
        "co.in",
        "com.br",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # a cookie name we can write back as it came


def refused_cookies(registry: Registry, allowed: frozenset[str], sent: Iterable[str]) -> list[str]:
    """The names in ``sent`` that belong to a tag not in ``allowed`` and to no tag in it."""
    refused = [t for t in registry.tags.values() if t.id not in allowed and t.cookies]
    kept = [t for t in registry.tags.values() if t.id in allowed and t.cookies]
    return sorted(
        {
            name
            for name in sent
            if _TOKEN.match(name)
            and any(t.cookie_matches(name) for t in refused)
            and not any(t.cookie_matches(name) for t in kept)
        }
    )


def cookie_domains(host: str) -> list[str]:
    """The ``Domain=`` values a cookie for ``host`` may carry: the host and each parent above a public
    suffix. None for an IP address or a single-label host such as localhost."""
    host = host.lower().rstrip(".")
    if not host or "." not in host or _is_ip(host):
        return []
    labels = host.split(".")
    out = []
    for i in range(len(labels) - 1):
        domain = ".".join(labels[i:])
        if domain in PUBLIC_SUFFIXES:
            break
        out.append(domain)
    return out


def expiry_headers(names: Iterable[str], host: str, secure: bool) -> list[str]:
    """``Set-Cookie`` values that expire each name host-only and on every domain of ``host``."""
    tail = "; Secure" if secure else ""
    domains = cookie_domains(host)
    out = []
    for name in names:
        out.append(f"{name}=; Max-Age=0; Path=/{tail}")
        out += [f"{name}=; Max-Age=0; Path=/; Domain=.{d}{tail}" for d in domains]
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


# -- what vendors keep outside cookies ------------------------------------------------------------
_CLEAR = (
    "(function(s){s.forEach(function(e){try{var i=e.indexOf(':'),k=e.slice(0,i),n=e.slice(i+1),w=window;"
    "if(k=='indexedDB'){w.indexedDB&&indexedDB.deleteDatabase(n);return;}var t=w[k];if(!t)return;"
    "if(n.slice(-1)=='*'){n=n.slice(0,-1);for(var j=t.length-1;j>=0;j--){var x=t.key(j);"
    "if(x&&x.indexOf(n)==0)t.removeItem(x);}}else t.removeItem(n);}catch(e){}});})"
)


@per_consent
def storage_script(registry: Registry, allowed: frozenset[str]) -> str:
    """``<script data-gate>`` that clears the localStorage keys, sessionStorage keys and IndexedDB
    databases (vendors.toml ``storage``) of the carried tags this visitor refuses, on every page while
    refused: HTTP cannot reach them, so the page after a withdrawal clears them. "" when there are none."""
    entries = sorted(
        {e for t in registry.tags.values() if t.id not in allowed and t.id in registry.carried_tags for e in t.storage}
    )
    if not entries:
        return ""
    return f"<script data-gate>{_CLEAR}({json.dumps(entries)});</script>"
