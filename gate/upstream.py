"""The outbound request: headers in and out, bodies streamed both ways, upstream failures mapped to
gate's errors (UpstreamUnavailable -> 502, UpstreamTimeout -> 504). The content decoders the rewriter
needs are in gate.decoders.

One pooled httpx transport (gate.pool) lives as long as the app, and requests go to it directly, not
through the httpx.AsyncClient that owns it (and closes it): the client's auth, redirect, hook and cookie
layers are nothing a proxy uses, and a proxy must keep no cookies (its connections are shared by every
visitor). Its pool is capped (an uncapped pool degrades badly at 32 concurrent requests). Readiness
probes have a client and pool of their own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request

from . import forwarded, pool
from .decoders import DECODABLE
from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .matcher import remembered
from .settings import Settings, Site
from .vendors import Memo

if TYPE_CHECKING:
    from .context import SiteContext

DEMO_BASE = "http://demo.invalid"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Not hop-by-hop, but ours to answer: uvicorn already sent the 100 Continue. X-Forwarded-*: gate.forwarded
# decided what to believe; we send our own.
_REQUEST_DROP = frozenset({"host", "expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 7230 token: a Forwarded value needing no quotes
# The server gate runs in dates every answer itself; two Date headers would disagree (nginx drops it too).
_RESPONSE_DROP = frozenset({"date"})


class Upstream:
    """The clients gate talks to origins with, opened once for the app's lifetime."""

    def __init__(self, settings: Settings) -> None:
        n = settings.upstream_max_connections
        self.timeout = httpx.Timeout(
            connect=settings.upstream_connect_timeout,
            read=settings.upstream_read_timeout,
            write=settings.upstream_read_timeout,
            pool=settings.upstream_connect_timeout,
        )
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n, keepalive_expiry=30.0)
        # Visitors' requests go to the transport itself (send); the client around it owns closing it.
        self.transport: httpx.AsyncBaseTransport = pool.transport(limits)
        self.client = httpx.AsyncClient(transport=self.transport, trust_env=False, cookies=_no_cookies())
        # Readiness probes get connections of their own: visitors who fill the pool (slow readers, a
        # stalling URL) must not make the instance look unready and pull it out of its load balancer.
        probes = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=30.0)
        self.probe = httpx.AsyncClient(
            transport=pool.transport(probes),
            timeout=self.timeout,
            trust_env=False,
            follow_redirects=False,
            cookies=_no_cookies(),
        )
        self.demo: httpx.AsyncBaseTransport | None = None
        if settings.demo:
            from .demo import create_demo_app  # only demo mode needs it

            self.demo = httpx.ASGITransport(app=create_demo_app(), raise_app_exceptions=False)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.probe.aclose()
        if self.demo is not None:
            await self.demo.aclose()

    async def send(
        self,
        request: Request,
        ctx: SiteContext,
        drop_cookie: Callable[[str], bool] | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> httpx.Response:
        """Forward ``request`` to the origin of its site (``ctx``: the site, and gate's public scheme and
        host for X-Forwarded-*); the response's body is not read yet. ``drop_cookie`` names request
        cookies the origin must not see; ``extra`` headers are added."""
        site = ctx.site
        base = DEMO_BASE if site.is_demo else site.upstream
        transport = self.demo if site.is_demo and self.demo is not None else self.transport
        target = request.scope.get("raw_path") or request.scope["path"].encode()
        query = request.scope.get("query_string", b"")
        url = base + target.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        headers = request_headers(request, upstream_host(site), ctx.scheme, ctx.netloc, drop_cookie) + (extra or [])
        outbound = httpx.Request(
            request.method,
            origin_url(url),
            headers=headers,
            content=_body(request),
            extensions={"timeout": self.timeout.as_dict()},
        )
        # The transport itself, not AsyncClient.send: the client's layers around it (auth, redirects, event
        # hooks, a cookie jar that parsed every Set-Cookie only to refuse it, a follow-up request built for
        # every 3xx) do nothing a proxy wants. In process (bench/inproc.py's harness, send timed alone,
        # alternated twice) this send's median went from 0.62 to 0.55 ms, nginx's answer included.
        try:
            response = await transport.handle_async_request(outbound)
        except httpx.TransportError as e:
            raise upstream_error(e) from None
        response.request = outbound
        return response


# httpx.URL(url) of an origin request (httpx.URL is immutable): an httpx.Request for a page took 24 us
# with its URL parsed, 9 us with it remembered (timeit).
origin_url = remembered(httpx.URL)


def _no_cookies() -> httpx.Cookies:
    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def upstream_error(e: httpx.TransportError) -> UpstreamError:
    reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return UpstreamTimeout(reason) if isinstance(e, httpx.TimeoutException) else UpstreamUnavailable(reason)


def upstream_host(site: Site) -> str | None:
    """The Host header the origin is sent: the site's ``upstream_host``, or None for the visitor's own.

    The visitor's, as nginx's recommended set-up does (``proxy_set_header Host $host``): frameworks check
    a form's Origin against the Host they are sent (Django answers 403 otherwise) and build absolute
    URLs from it."""
    if site.upstream_host:
        return site.upstream_host
    return "demo.invalid" if site.is_demo else None


def origin_name(site: Site) -> str:
    """The name the origin knows itself by: ``upstream_host``, else the upstream URL's host[:port]."""
    return site.upstream_host or ("demo.invalid" if site.is_demo else urlsplit(site.upstream).netloc)


def _body(request: Request) -> AsyncIterator[bytes] | None:
    """The request body as a stream (never whole in memory), or None when there is none."""
    h = request.headers
    if "transfer-encoding" not in h and h.get("content-length", "0").strip() in ("", "0"):
        return None

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk

    return chunks()


def sent_all(response: httpx.Response) -> Callable[[], bool]:
    """Whether the origin has sent the whole body (read as ``raw_body`` reads it), as far as it said how
    long the body is: always False for a body without a (single, valid) Content-Length."""
    declared = response.headers.get("content-length", "")
    if not declared.isdigit() or len(declared) > 18:
        return lambda: False
    length = int(declared)
    return lambda: response.num_bytes_downloaded >= length


async def raw_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response body exactly as the origin sent it; failures mid-body become UpstreamError."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError as e:
        raise upstream_error(e) from None


# -- headers ----------------------------------------------------------------------------------
def _connection_named(raw: list[tuple[bytes, bytes]]) -> set[str]:
    names = set()
    for k, v in raw:
        if k.lower() == b"connection":
            names |= {t.strip().lower() for t in v.decode("latin-1").split(",") if t.strip()}
    return names


def request_headers(
    request: Request,
    host: str | None,
    public_scheme: str,
    public_host: str,
    drop_cookie: Callable[[str], bool] | None = None,
) -> list[tuple[bytes, bytes]]:
    """The visitor's headers as the origin should see them (without the cookies ``drop_cookie`` names).
    ``host``: the Host to send, None for the visitor's (``public_host``); X-Forwarded-* and Forwarded
    always say what the visitor asked for."""
    raw = request.headers.raw
    drop = HOP_BY_HOP | _REQUEST_DROP | _connection_named(raw)
    out: list[tuple[bytes, bytes]] = [(b"host", (host or public_host).encode("latin-1"))]
    for k, v in raw:
        name = k.decode("latin-1").lower()
        if name in drop:
            continue
        if name == "cookie" and drop_cookie is not None:
            kept = filter_cookie_header(v.decode("latin-1"), drop_cookie)
            if kept:
                out.append((b"cookie", kept.encode("latin-1")))
        elif name == "accept-encoding":
            out.append((b"accept-encoding", _decodable_only(v.decode("latin-1")).encode("latin-1")))
        else:
            out.append((name.encode("latin-1"), v))
    forwarded_for = forwarded.forwarded_for(request.scope)
    if forwarded_for:
        out.append((b"x-forwarded-for", ", ".join(forwarded_for).encode("latin-1")))
    out.append((b"x-forwarded-proto", public_scheme.encode("latin-1")))
    out.append((b"x-forwarded-host", public_host.encode("latin-1")))
    out.append((b"forwarded", forwarded_header(forwarded_for, public_scheme, public_host).encode("latin-1")))
    return out


def forwarded_header(chain: list[str], scheme: str, host: str) -> str:
    """RFC 7239 ``Forwarded``: one element per address of the chain (visitor first); the first also says
    the Host and scheme the visitor asked for."""
    first = [f"for={_forwarded_value(chain[0])}"] if chain else []
    elements = [";".join(first + [f"host={_forwarded_value(host)}", f"proto={scheme}"])]
    return ", ".join(elements + [f"for={_forwarded_value(a)}" for a in chain[1:]])


def _forwarded_value(value: str) -> str:
    if value.count(":") > 1 and not value.startswith("["):  # an IPv6 address
        value = f"[{value}]"
    if _TOKEN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_cookie_header(value: str, drop: Callable[[str], bool]) -> str:
    """A Cookie header without the pairs whose name ``drop`` names (the rest byte for byte)."""
    pairs = [p for p in value.split(";") if p.strip()]
    return ";".join(p for p in pairs if not drop(p.split("=", 1)[0].strip())).strip()


def _decodable_only(accept_encoding: str) -> str:
    """Ask only for codings we can decode: an HTML page we cannot read cannot be gated."""
    kept = [t.strip() for t in accept_encoding.split(",") if t.split(";")[0].strip().lower() in DECODABLE]
    return ", ".join(kept) or "identity"


class OriginMap:
    """Rewrites absolute URLs on the upstream's origin (as the origin knows itself) to the public one."""

    def __init__(self, site: Site, public_origin: str) -> None:
        base = urlsplit(DEMO_BASE if site.is_demo else site.upstream)
        scheme = base.scheme
        self.upstream_scheme = scheme
        # The origin names itself by its URL's host, its upstream_host, or (as it is sent the visitor's
        # Host) the public host under its own scheme, e.g. http:// behind TLS that gate terminates.
        public_netloc = urlsplit(public_origin).netloc
        self.origins = {_origin_key(scheme, n) for n in (base.netloc, origin_name(site), public_netloc)}
        self.public = public_origin

    def rewrite(self, value: str) -> str:
        stripped = value.strip()
        absolute = ("" if not stripped.startswith("//") else self.upstream_scheme + ":") + stripped
        parts = urlsplit(absolute)
        if not parts.scheme or not parts.netloc or _origin_key(parts.scheme, parts.netloc) not in self.origins:
            return value
        return self.public + absolute[len(parts.scheme) + 3 + len(parts.netloc) :]


def origin_map(known: Memo[OriginMap], site: Site, public_origin: str) -> OriginMap:
    """OriginMap(site, public_origin), from ``known`` (the app's: per site and public origin, bounded, as
    the public origin comes from the visitor's Host) when it was made before: read for every response."""
    key = (site.host, public_origin)
    made = known.get(key)
    if made is None:
        made = OriginMap(site, public_origin)
        known.put(key, made)
    return made


def _origin_key(scheme: str, netloc: str) -> tuple[str, str]:
    scheme, netloc = scheme.lower(), netloc.lower().rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return scheme, netloc


def response_headers(response: httpx.Response, origins: OriginMap) -> list[tuple[bytes, bytes]]:
    """The origin's headers for the visitor: hop-by-hop dropped, every Set-Cookie kept, Location and
    Content-Location on the upstream origin pointed at the public one."""
    raw = response.headers.raw
    drop = HOP_BY_HOP | _RESPONSE_DROP | _connection_named(raw)
    out = []
    for k, v in raw:
        name = k.decode("latin-1").lower()
        if name in drop:
            continue
        if name in ("location", "content-location"):
            v = origins.rewrite(v.decode("latin-1")).encode("latin-1")
        out.append((name.encode("latin-1"), v))
    return out
