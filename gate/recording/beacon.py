"""POST /_gate/beacon: the third-party URLs one page view contacted, as the visitor's browser saw them.

gate/static/beacon.js (injected into every rewritten page while recording is on) watches resource
timing and sends, once per page view,
``{"v": 2, "page": "/path", "urls": ["//connect.facebook.net/en_US/fbevents.js", …]}``: host and path of
each request, no query but a tag loader's ``id`` (an account id such as G-XXXX, which tells gtag.js for
Analytics from gtag.js for Ads). Version 1 (``"hosts": [host, …]``) is still read.
gate matches each URL with the rewriter's own matcher (host and path patterns) to the one tag it
belongs to, and counts, for the site the request came to:

- fired: a tag reached the network;
- field leak: it did although the visitor (by the cookie sent with the beacon) refused every tag that
  could have caused it;
- undeclared host: a host that vendors.toml does not know, a recipient the notice does not name;
- unattributed host: a vendor's host whose request several tags could have made (the visitor's consent
  does not tell them apart): counted for no tag rather than for all of them.

The endpoint trusts nothing: same origin only (403), a 4 KB body cap (413), a strict schema (400),
text/plain or JSON only (415), the token of a page gate served for this site and this path, counted
once (``?t=``, gate.tokens: 403 without it), a per-client token bucket shared by every worker
(gate.limits: 429). Every refusal is counted by reason for the report. It never reads or changes
consent beyond reading the cookie, and the beacon carries no personal data: hosts and paths, no query
values but a tag loader's id.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .. import tokens, urls
from ..api import check_origin, read_body, take_limit
from ..banner import el, static_url
from ..context import gate_of, read_consent
from ..errors import RequestError
from ..vendors import Registry
from . import metrics
from .ledger import record_rejection, site_label

MAX_BODY = 4096
MAX_HOSTS = 64
PER_MINUTE, BURST = 30.0, 30.0  # one page view every two seconds, sustained, per client
SCRIPT_URL = static_url("beacon.js")
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$"
)
# //host/path, at most 100 characters of path, and at most a tag loader's id (see the module's doc)
_URL = re.compile(
    r"^//([A-Za-z0-9_.-]{1,253})(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]{0,100})?"
    r"(?:\?id=[A-Za-z0-9_-]{1,40})?$"
)
_NO_STORE = {"cache-control": "no-store"}


def script_tag(origin: str, token: str | None, nonce: str | None = None) -> str:
    """The beacon's <script> for a rewritten page's body (while recording is on), its URL absolute on
    ``origin`` (gate's public ``scheme://host``: a page's <base> must not send it elsewhere), carrying
    the page's ``token`` (gate.tokens)."""
    return el("script", src=origin + SCRIPT_URL, defer=True, nonce=nonce, data_token=token)


def parse(body: bytes) -> tuple[str, list[str]]:
    """(page path, contacted ``//host/path`` URLs) from a beacon body; RequestError(400) for anything
    off-schema. A version 1 body's hosts come back as ``//host/``."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "body is not valid JSON") from None
    if isinstance(data, dict) and set(data) == {"v", "page", "urls"} and data["v"] == 2:
        return _page(data["page"]), _urls(data["urls"])
    if not isinstance(data, dict) or set(data) != {"v", "page", "hosts"} or data["v"] != 1:
        raise RequestError(400, 'expected {"v": 2, "page": "/path", "urls": ["//host/path", …]}')
    return _page(data["page"]), [f"//{host}/" for host in _hosts(data["hosts"])]


def _urls(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_HOSTS:
        raise RequestError(400, f'"urls" must be a list of at most {MAX_HOSTS} URLs')
    clean = set()
    for url in value:
        m = _URL.match(url) if isinstance(url, str) else None
        if m is None or not _HOST.match(m.group(1).lower().rstrip(".")):
            raise RequestError(
                400, '"urls" must hold //host/path[?id=…] such as "//connect.facebook.net/en_US/fbevents.js"'
            )
        clean.add("//" + m.group(1).lower().rstrip(".") + url[2 + len(m.group(1)) :])
    return sorted(clean)


def _page(page: Any) -> str:
    if not isinstance(page, str) or not page.startswith("/") or page.startswith("//") or len(page) > 512:
        raise RequestError(400, '"page" must be a path starting with one "/"')
    return page.split("?")[0].split("#")[0]


def _hosts(hosts: Any) -> list[str]:
    if not isinstance(hosts, list) or len(hosts) > MAX_HOSTS:
        raise RequestError(400, f'"hosts" must be a list of at most {MAX_HOSTS} host names')
    clean = []
    for host in hosts:
        if not isinstance(host, str) or not _HOST.match(host.lower().rstrip(".")):
            raise RequestError(400, '"hosts" must hold host names such as "connect.facebook.net"')
        clean.append(host.lower().rstrip("."))
    return sorted(set(clean))


class Contacts(NamedTuple):
    """What one page view's contacted URLs say: see the module's doc."""

    fired: frozenset[str]
    leaked: frozenset[str]
    undeclared: frozenset[str]
    unattributed: frozenset[str]


class Attribution:
    """A contacted URL -> the one tag it belongs to, by the rewriter's matcher (``tags_for_url``)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._candidates: dict[str, frozenset[str]] = {}

    def claimed(self, host: str) -> frozenset[str]:
        return self.registry.tags_for_url(urls.URL("https", host, "/"))

    def candidates(self, host: str) -> frozenset[str]:
        """Tags claiming the host, plus tags whose URL patterns name it (gtag.js on www.googletagmanager.com
        is Google Analytics as much as Tag Manager: seeing the host must not call GA4 a leak)."""
        found = self._candidates.get(host)
        if found is None:
            names = {re.escape(host), re.escape(host.removeprefix("www."))}
            found = self.claimed(host) | {
                t.id for t in self.registry.tags.values() if any(n in p.pattern for p in t.url_patterns for n in names)
            }
            if len(self._candidates) > 4096:
                self._candidates.clear()
            self._candidates[host] = found
        return found

    def tags_of(self, url: urls.URL) -> frozenset[str]:
        """The tags that could have made a request to ``url``: the one whose URL pattern matches it;
        without a pattern match, every tag the host alone could belong to."""
        tags = self.registry.tags_for_url(url)
        if not tags or any(p.match(url.key) for t in tags for p in self.registry.tags[t].url_patterns):
            return tags
        return tags | self.candidates(url.host)

    def attribute(self, contacted: list[str], allowed: frozenset[str], own_host: str) -> Contacts:
        """What one page view's contacted ``//host/path`` URLs say, under the visitor's ``allowed`` tags."""
        fired: set[str] = set()
        leaked: set[str] = set()
        undeclared: set[str] = set()
        unattributed: set[str] = set()
        for entry in contacted:
            url = urls.parse("https:" + entry)
            if url is None or not url.host:
                continue
            host = url.host
            if host == own_host or host.endswith("." + own_host):
                continue  # the site's own subdomains are first party
            tags = self.tags_of(url)
            if not tags:
                undeclared.add(host)
                continue
            consented = tags & allowed  # a consented tag explains the request better than a refused one
            if len(tags) == 1 or len(consented) == 1:
                fired |= consented or tags
                if not consented:
                    leaked |= tags
            else:  # several tags could have sent it: count it for none of them, not for all
                unattributed.add(host)
                if not consented:
                    leaked |= tags  # whichever it was, the visitor refused it
        return Contacts(frozenset(fired), frozenset(leaked), frozenset(undeclared), frozenset(unattributed))


_REASONS = {400: "malformed", 403: "origin", 413: "too_large", 415: "media_type"}


def endpoint() -> Any:
    attributions: dict[str | None, Attribution] = {}

    async def beacon(request: Request) -> Response:
        try:
            response = await _beacon(request, attributions)
        except RequestError as e:
            metrics.BEACONS.labels(str(e.status)).inc()
            return PlainTextResponse(e.message + "\n", e.status, headers=e.headers)
        metrics.BEACONS.labels("204").inc()
        return response

    return beacon


async def _beacon(request: Request, attributions: dict[str | None, Attribution]) -> Response:
    gate = gate_of(request)
    ctx = gate.context(request)  # UnknownSite: 421
    site = ctx.site
    try:
        check_origin(request, ctx.origin)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in ("text/plain", "application/json"):
            raise RequestError(415, "expected text/plain (navigator.sendBeacon) or application/json")
        page, contacted = parse(await read_body(request, MAX_BODY))
        token = gate.page_tokens.check(request.query_params.get(tokens.QUERY), site_label(site), page)
    except RequestError as e:
        record_rejection(request, site, "beacon", _REASONS.get(e.status, str(e.status)))
        raise
    except tokens.Rejected as e:
        record_rejection(request, site, "beacon", e.reason)
        raise RequestError(403, f"not counted ({e.reason}): a beacon needs the token of a page gate served") from None
    reason, _ = await take_limit(
        request, "beacon", PER_MINUTE, BURST, [f"b:{token.nonce}"], time.time() + tokens.MAX_AGE
    )
    if reason is not None:
        record_rejection(request, site, "beacon", reason)
        if reason == "rate_limited":
            raise RequestError(429, "too many beacons from this client; slow down", retry_after=int(60 / PER_MINUTE))
        if reason == "replayed":
            raise RequestError(403, "not counted (replayed): this page view was counted already")
        raise RequestError(503, "beacons cannot be checked right now", retry_after=5)
    recorder = gate.recorder
    if recorder is not None:
        registry = ctx.registry
        consent = read_consent(request, gate.codec, ctx)
        allowed = consent.allowed_tags(registry, ctx.carried)
        attribution = attributions.get(site.host) or attributions.setdefault(site.host, Attribution(registry))
        own = (request.url.hostname or "").lower().rstrip(".")
        recorder.ledger.beacon(site_label(site), page, *attribution.attribute(contacted, allowed, own))
    return Response(status_code=204, headers=_NO_STORE)


def routes() -> list[BaseRoute]:
    return [Route("/_gate/beacon", endpoint(), methods=["POST"])]
