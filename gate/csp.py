"""The consent-derived Content-Security-Policy, and the violation reports it (and the guard) send.

The server strips refused tags from the HTML; this policy is the backstop for what the page's own
code loads at run time (a tag manager injecting a pixel). Per site (``csp = off | report-only |
enforce``) each page gets, for this visitor::

    default-src 'self' <hosts> 'unsafe-inline' 'unsafe-eval' data: blob:;
    style-src * 'unsafe-inline' data: blob:; font-src * data:; report-uri /_gate/csp-report

that is: scripts, images, connections, frames, media, objects and workers may reach these hosts and
no others; styles and fonts anywhere (nothing consent is about). One host list under default-src,
not four copies under script-src, img-src, connect-src and frame-src (which fall back to it): with
every tag accepted the list is about 700 bytes, and a 3 KB header risks nginx's default 4 KB
proxy_buffer_size for all of a response's headers.

<hosts> are the site's declared ``csp_hosts`` and the hosts the visitor's ACCEPTED tags use: each
tag's ``hosts`` and the hosts its ``url_patterns`` name (www.googletagmanager.com for GA4's
gtag.js), and a vendor's ``domains`` only when every tag of that vendor is accepted (a URL no tag
claims counts as all of the vendor's tags, as on the server). A host shared by an accepted and a
refused tag is allowed: CSP cannot tell gtag.js?id=G-… from ?id=AW-…; the guard can.

Why 'unsafe-inline' (and 'unsafe-eval'): this policy decides which hosts a page may reach, not
whether it may run inline code. Real pages are full of inline scripts and handlers, and tag managers
eval; forbidding them would break pages in enforce mode for no consent reason. When the origin's
own CSP uses a nonce, scripts carry it, so ours lists the nonce instead ('unsafe-inline' would be
ignored next to it anyway).

Merging with the origin's CSP never weakens it: the origin's headers are passed untouched and ours is
one more policy (report-only: Content-Security-Policy-Report-Only; enforce: a second
Content-Security-Policy). A browser enforces every policy it is given, so the result is the
intersection. ``report-to`` is added only on https sites: Chromium ignores report-uri once report-to
is present, and its Reporting API delivers nothing to a plain-http endpoint (measured: nothing in
100 s), so on http it would silence the reports.

POST /_gate/csp-report takes ``application/csp-report`` and ``application/reports+json`` (also what the
guard sends, marked ``"sourceFile": "gate-guard"``), from the site's own pages only, at most 16 KB,
and only with the token of a page gate served for the site (``report-uri /_gate/csp-report?t=…``;
gate.tokens). A blocked load counts once per page view however often it is reported, and each client
has a share of reports a minute shared by every worker (gate.limits). Refusals are counted by reason.
Each blocked URL counts once as "attempted": per vendor when registry.tags_for_url knows it, else
per undeclared host. Counts stay in memory (Attempts); the ledger reads attempted_counts() or
subscribes a callback.

The policy and the counting import no server library; the endpoint is gate/csp_report.py.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import urls
from .settings import Site
from .tokens import QUERY as TOKEN_QUERY
from .vendors import Registry, Tag, per_consent

log = logging.getLogger("gate.csp")

REPORT_PATH = "/_gate/csp-report"
REPORT_GROUP = "gate-csp"
REPORT_TYPES = ("application/csp-report", "application/reports+json")
MAX_REPORT_BODY = 16 * 1024
GUARD_SOURCE = "gate-guard"
MAX_ATTEMPTS_PER_REPORT = 32
REPORTS_PER_MINUTE, REPORTS_BURST = 120.0, 120.0  # per client: a page may break many rules at once
# A url_pattern's literal host: "//host\.name/..." with an optional subdomain group in front.
_PATTERN_HOST = re.compile(r"^//(\(\?:[^()]*\\\.\)\?)?((?:[a-z0-9-]+\\\.)+[a-z0-9-]+)(?=/|\\\?|\\b|$)", re.IGNORECASE)
_WWW_ONLY = "(?:www\\.)?"


@dataclass(frozen=True)
class Source:
    """A host a tag uses: ``host`` (and every host under it when ``subdomains``), with a path prefix."""

    host: str
    path: str = ""
    subdomains: bool = True

    def covers(self, host: str) -> bool:
        return host == self.host or (self.subdomains and host.endswith("." + self.host))

    def csp(self) -> list[str]:
        out = [self.host + self.path]
        if self.subdomains and not self.path:
            out.append("*." + self.host)
        return out


def spec_source(spec: str) -> Source:
    """A vendors.toml ``host[/path]`` entry, matched by label."""
    host, _, path = spec.partition("/")
    return Source(host.lower(), "/" + path if path else "")


def pattern_sources(pattern: str) -> list[Source] | None:
    """The hosts a url_pattern can match, or None when its host is not a plain literal."""
    m = _PATTERN_HOST.match(pattern)
    if m is None:
        return None
    host = m.group(2).replace("\\.", ".").lower()
    prefix = m.group(1)
    if prefix is None:
        return [Source(host, subdomains=False)]
    if prefix.lower() == _WWW_ONLY:
        return [Source(host, subdomains=False), Source("www." + host, subdomains=False)]
    return [Source(host)]


def tag_sources(tag: Tag) -> list[Source]:
    """Every host ``tag`` uses: its ``hosts`` (by label) and the hosts its url_patterns name."""
    out = [spec_source(h) for h in tag.hosts]
    for p in tag.url_patterns:
        out += pattern_sources(p.pattern) or []
    return out


def accepted_sources(registry: Registry, allowed: frozenset[str]) -> list[Source]:
    """Hosts the visitor's accepted tags use, plus the domains of vendors whose tags are all accepted."""
    out: list[Source] = []
    for tag in registry.tags.values():
        if tag.id in allowed:
            out += tag_sources(tag)
    for vendor in registry.vendors.values():
        if vendor.tags and all(t in allowed for t in vendor.tags):
            out += [spec_source(d) for d in vendor.domains]
    unique = list(dict.fromkeys(out))
    # connect.facebook.net adds nothing next to facebook.net (by label): keep the list short.
    return [
        s
        for s in unique
        if not any(t is not s and t.subdomains and t.covers(s.host) and s.path.startswith(t.path) for t in unique)
    ]


# -- the policy -----------------------------------------------------------------------------------
@per_consent
def host_list(registry: Registry, allowed: frozenset[str]) -> str:
    """The CSP host-sources of the accepted tags, space-separated (cached per registry and consent)."""
    return " ".join(dict.fromkeys(s for src in accepted_sources(registry, allowed) for s in src.csp()))


def policy(
    site: Site,
    registry: Registry,
    allowed: frozenset[str],
    nonce: str | None = None,
    report_to: bool = False,
    token: str | None = None,
) -> str:
    """This visitor's policy on ``site``; ``token``: the page's (gate.tokens), carried by report-uri."""
    allow = " ".join(s for h in site.allow_hosts for s in spec_source(h.removeprefix("*.")).csp())
    hosts = " ".join(filter(None, ["'self'", " ".join(site.csp_hosts), allow, host_list(registry, allowed)]))
    inline = f"'nonce-{nonce}'" if nonce else "'unsafe-inline'"
    parts = [
        f"default-src {hosts} {inline} 'unsafe-eval' data: blob:",
        "style-src * 'unsafe-inline' data: blob:",
        "font-src * data:",
        f"report-uri {report_url(token)}",
    ]
    if report_to:
        parts.append(f"report-to {REPORT_GROUP}")
    return "; ".join(parts)


def report_url(token: str | None) -> str:
    """Where this page's reports go: the token is URL-safe base64 and dots, nothing CSP would split on."""
    return f"{REPORT_PATH}?{TOKEN_QUERY}={token}" if token else REPORT_PATH


def response_headers(
    site: Site, registry: Registry, allowed: frozenset[str], nonce: str | None, origin: str, token: str | None = None
) -> list[tuple[bytes, bytes]]:
    """The headers a page gets for ``site.csp``; the origin's own CSP headers are left as they are.
    ``origin``: the site's public origin, e.g. ``https://jobs.example.jp``."""
    if site.csp == "off":
        return []
    https = origin.startswith("https://")
    name = b"content-security-policy" if site.csp == "enforce" else b"content-security-policy-report-only"
    out = [(name, policy(site, registry, allowed, nonce, report_to=https, token=token).encode("latin-1"))]
    if https:
        out.append((b"reporting-endpoints", f'{REPORT_GROUP}="{origin}{report_url(token)}"'.encode("latin-1")))
    return out


# -- reports --------------------------------------------------------------------------------------
class Attempt(NamedTuple):
    """One kind of blocked load: on ``site`` (its host, "" for the default site), a ``vendor`` id (or
    "" for an undeclared host), the blocked ``host``, and who saw it: "csp", "guard" or "html" (an
    undeclared host the rewriter met in a page)."""

    site: str
    vendor: str
    host: str
    source: str


class Attempts:
    """What pages tried to load against the visitor's consent, counted in memory. Bounded (anyone can
    post a report): past ``max_keys`` distinct keys, new hosts are counted under the host "(other)"."""

    def __init__(self, max_keys: int = 2048) -> None:
        self._counts: Counter[Attempt] = Counter()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Attempt], None]] = []
        self.max_keys = max_keys

    def record(self, attempt: Attempt) -> None:
        with self._lock:
            if attempt not in self._counts and len(self._counts) >= self.max_keys:
                attempt = attempt._replace(host="(other)")  # the vendor still counts; only the host is lost
            self._counts[attempt] += 1
        for listener in list(self._listeners):
            try:
                listener(attempt)
            except Exception:  # a listener's bug must not lose the visitor's report
                log.exception("attempt listener failed")

    def attempted_counts(self) -> dict[Attempt, int]:
        """A snapshot: {Attempt: count}."""
        with self._lock:
            return dict(self._counts)

    def by_vendor(self, site: str | None = None) -> dict[str, int]:
        """Attempts per vendor id ("" = undeclared hosts), for one site's host or all sites."""
        out: Counter[str] = Counter()
        for a, n in self.attempted_counts().items():
            if site is None or a.site == site:
                out[a.vendor] += n
        return dict(out)

    def subscribe(self, listener: Callable[[Attempt], None]) -> None:
        """Call ``listener(attempt)`` for every attempt recorded from now on."""
        self._listeners.append(listener)


def blocked(body: bytes, media_type: str) -> Iterator[tuple[str, str]]:
    """(blocked URL, source) pairs from a report body; nothing for what is not a report."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return
    if media_type == "application/csp-report":
        items = [data.get("csp-report")] if isinstance(data, dict) else []
        fields = ("blocked-uri", "source-file")
    else:
        items = (
            [r.get("body") for r in data if isinstance(r, dict) and r.get("type") == "csp-violation"]
            if isinstance(data, list)
            else []
        )
        fields = ("blockedURL", "sourceFile")
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(fields[0]), str):
            yield item[fields[0]], "guard" if item.get(fields[1]) == GUARD_SOURCE else "csp"


def attempts_in(reports: Iterable[tuple[str, str]], registry: Registry, site: str) -> list[Attempt]:
    """One Attempt per blocked URL that is a host (not 'inline', 'eval', 'data' …)."""
    out = []
    for raw, source in reports:
        url = urls.parse(raw)
        if url is None or url.scheme not in ("http", "https", "ws", "wss") or not url.host:
            continue
        vendors = sorted({registry.tags[t].vendor for t in registry.tags_for_url(url)})
        out += [Attempt(site, v, url.host, source) for v in vendors] or [Attempt(site, "", url.host, source)]
    return out
