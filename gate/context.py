"""What a request to gate works with, typed: the app's parts (``Gate``, the one object on
``app.state``), the site a request is for (``SiteContext``, resolved once per request from its Host)
and what one visit to a page gathers on its way (``Visit``: consent, timings, outcome).

``Gate.context(request)`` is the one place that decides "gate serves no site for this Host" (421):
every endpoint asks it and only chooses how the answer looks (the proxy's plain text, the API's
short message, the HTML pages' error page).

The ``Visit`` of a page view lives in the ASGI scope's state under one key, so the middleware outside
the routes (the access line, the timing metrics) reads it after the response without reaching into
the request's other attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from .consent import COOKIE_NAME, Consent, ConsentCodec
from .errors import RequestError
from .settings import Settings, Site
from .vendors import Memo, Registry

if TYPE_CHECKING:  # the parts' own modules import this one; their types are only named here
    from .csp import Attempts
    from .limits import Limits
    from .pagebody import PageBody
    from .readiness import Readiness
    from .recording.recorder import Recorder
    from .rewrite import Outcome
    from .shares import Shares
    from .tokens import PageTokens
    from .upstream import OriginMap, Upstream

VISIT_KEY = "gate_visit"  # the Visit's key in the ASGI scope's state


class UnknownSite(RequestError):
    """No site of gate.toml answers to the request's Host (and there is no default site)."""

    def __init__(self) -> None:
        super().__init__(421, "gate serves no site for this Host")


@dataclass(frozen=True)
class SiteContext:
    """The site one request is for, with what gate prepared for it once at start-up (its registry,
    the tags it carries), and gate's public origin as the visitor reached it: ``public_scheme``, else
    a trusted proxy's X-Forwarded-Proto, else the connection's scheme; the Host as sent."""

    site: Site
    registry: Registry
    carried: frozenset[str]
    scheme: str
    netloc: str

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: what Origin checks, the CSP, redirects and injected URLs use."""
        return f"{self.scheme}://{self.netloc}"


@dataclass(eq=False)
class Visit:
    """One page view through the proxy: filled in as the request goes, read after the response by the
    ledger, the access line and the timing metrics."""

    site: SiteContext
    consent: Consent
    allowed: frozenset[str]  # the tags let through for this visitor on this page
    token: str | None = None  # the page's own token (gate.tokens), once it is a page gate rewrites
    page: PageBody | None = None  # the page body transform: its stopwatch and the rewriter's outcome
    upstream_seconds: float | None = None  # how long the origin took to answer (headers)
    outcome: Outcome | None = None  # what the rewriter met, once the page has streamed

    def keep(self, state: MutableMapping[str, Any]) -> None:
        """Put this visit where visit_of finds it (a request's ``scope["state"]``)."""
        state[VISIT_KEY] = self


def visit_of(state: Mapping[str, Any] | None) -> Visit | None:
    """The Visit kept in an ASGI scope's state, if the proxy made one for this request."""
    visit = state.get(VISIT_KEY) if isinstance(state, Mapping) else None
    return visit if isinstance(visit, Visit) else None


@dataclass(eq=False)
class Gate:
    """Everything the app shares between requests; built by gate.app.create_app, on ``app.state.gate``.

    Per site (keyed by Site.host, None for the default site): the registry as the site reads it, the
    tags it carries, its form-path matcher and the form pages found while reading its pages. The
    upstream pool and the recorder are opened by the lifespan (None before it runs; the recorder
    stays None with ``store = "off"``)."""

    settings: Settings
    registry: Registry  # vendors.toml as loaded, before any site's changes
    codec: ConsentCodec
    registries: dict[str | None, Registry]
    carried: dict[str | None, frozenset[str]]
    form_matchers: dict[str | None, re.Pattern[str] | None]
    form_pages: dict[str | None, Memo]
    readiness: Readiness
    shares: Shares
    page_tokens: PageTokens
    limits: Limits
    attempts: Attempts
    upstream: Upstream | None = None
    recorder: Recorder | None = None
    ledger_listens: bool = False  # the ledger subscribed to ``attempts`` (once, however often the lifespan runs)
    # Per (site host, public origin): what response_headers maps the origin's own URLs with.
    origin_maps: Memo[OriginMap] = field(default_factory=lambda: Memo(256))

    def site_for(self, host: str | None) -> Site | None:
        return self.settings.site_for(host)

    def context(self, request: HTTPConnection) -> SiteContext:
        """The request's site, or UnknownSite (421): the one place that decides it."""
        site = self.settings.site_for(request.headers.get("host"))
        if site is None:
            raise UnknownSite()
        return SiteContext(
            site,
            self.registries[site.host],
            self.carried[site.host],
            site.public_scheme or request.url.scheme,
            request.url.netloc,
        )

    def pool(self) -> Upstream:
        """The upstream pool; only while the lifespan runs."""
        if self.upstream is None:
            raise RuntimeError("the upstream pool is opened by the app's lifespan, which has not started")
        return self.upstream


def gate_of(conn: HTTPConnection) -> Gate:
    """The Gate of the app serving ``conn``."""
    gate: Gate = conn.app.state.gate
    return gate


def read_consent(request: HTTPConnection, codec: ConsentCodec, ctx: SiteContext) -> Consent:
    """The visitor's consent from the cookie, for this site (Sec-GPC and the site's mode included)."""
    return codec.read(
        request.cookies.get(COOKIE_NAME),
        ctx.registry,
        gpc=request.headers.get("sec-gpc") == "1",
        opt_out_mode=ctx.site.mode == "opt-out",
    )
