"""The catch-all endpoint: every request that is not under /_gate/, top to bottom.

site by Host -> consent from the cookie -> forward -> HTML: decode, sniff the charset, rewrite as it
streams, send identity and private | anything else: the origin's bytes, untouched and streamed.

The ``Gate-Tags`` header. Headers leave before the body, and the rewriter only knows what it met on
the page once the body has gone through it, so the header cannot report the page's outcome without
buffering the page (which we refuse to do). It states the decision instead, computed from the
visitor's consent before the first byte: among the tags this site carries,
``Gate-Tags: kept=google.analytics; stripped=criteo.onetag,facebook.pixel`` means "let through /
stripped for this visitor". What the rewriter actually met on this page is logged (debug) and left on
``request.state.gate_outcome`` after the stream, for whoever keeps the ledger.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Iterator

import anyio
import httpx
from starlette.datastructures import URLPath
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from . import charset, consentmode, csp, expiry, guard, urls
from .banner import choose_lang, el, render_banner, render_dock, render_root
from .consent import COOKIE_NAME, Consent, ConsentCodec
from .decoders import Decoder, decoder_for
from .errors import IncompleteBody, PageTooLarge, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .logs import Stopwatch
from .recording import beacon, ledger, metrics
from .rewrite import Outcome, PagePlan, PageRewriter, stub_script
from .settings import Site
from .shares import ShareExceeded
from .upstream import OriginMap, raw_body, response_headers
from .vendors import Registry

log = logging.getLogger("gate.proxy")

HTML_TYPES = ("text/html", "application/xhtml+xml")
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
_OVERDUE = "no complete response within upstream_response_timeout"
RETRY_AFTER = 2  # seconds, in the 503 of a visitor or path over its share of the upstream pool


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app behind every path that is not /_gate/, for every method."""
    request = Request(scope, receive, send)
    response: Response | Streamed
    if sum(name == b"host" for name, _ in scope["headers"]) > 1:
        # Which one names the site? A front proxy and gate could each believe another.
        response = PlainTextResponse("400 Bad Request: more than one Host header.\n", 400)
    elif (site := request.app.state.settings.site_for(request.headers.get("host"))) is None:
        response = PlainTextResponse("421 Misdirected Request: gate serves no site for this Host.\n", 421)
    else:
        client = request.client.host if request.client else ""
        try:
            async with request.app.state.shares.claim(client, f"{site.host or ''} {scope['path']}"):
                response = await handle(request)
                await response(scope, receive, send)
            return
        except ShareExceeded as e:
            response = busy(e, request, site)
    await response(scope, receive, send)


class CatchAll(BaseRoute):
    """The proxy's route: every HTTP request no route before it took, whatever its method and path. (A
    Mount("") missed paths holding a newline, %0a: its pattern's "." does not match one.)"""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if scope["type"] == "http" else (Match.NONE, {})

    def url_path_for(self, name: str, /, **path_params: object) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)


async def handle(request: Request) -> Response | Streamed:
    state = request.app.state
    site = state.settings.site_for(request.headers.get("host"))
    if site is None:
        return PlainTextResponse("421 Misdirected Request: gate serves no site for this Host.\n", 421)
    deadline = anyio.current_time() + state.settings.upstream_response_timeout
    scheme, host = site.public_scheme or request.url.scheme, request.url.netloc
    registry, carried = state.registries[site.host], state.carried[site.host]
    consent = read_consent(request, site, registry, state.codec)
    request.state.gate_site, request.state.gate_consent = site, consent  # for the ledger, after the stream
    allowed = consent.allowed_tags(registry, carried)
    if is_form_page(request, site):  # an application form: tags that read it need their own consent
        allowed -= form_readers(registry, consent, allowed)
    started = time.perf_counter()
    try:
        with anyio.fail_after(deadline - anyio.current_time()):
            upstream = await unless_gone(
                request,
                state.upstream.send(
                    request,
                    site,
                    scheme,
                    host,
                    cookie_filter(registry, allowed),
                    [(b"gate-consent", consent_header(consent).encode())],
                ),
            )
        if upstream is None:
            log.info("client went away while the origin was answering: %s %s", request.method, request.url.path)
            return Response(status_code=499)  # never sent: nobody is there
    except UpstreamError as e:
        return error_page(e, request, site)
    except TimeoutError:
        return error_page(UpstreamTimeout(_OVERDUE), request, site)
    except ClientDisconnect:
        log.info("client went away during the request body: %s %s", request.method, request.url.path)
        return Response(status_code=400)
    finally:
        request.state.gate_upstream_seconds = time.perf_counter() - started  # for the access line
    try:
        response = await respond(request, site, upstream, scheme, host, consent, allowed)
    except UpstreamError as e:  # the origin failed while its first bytes were being sniffed
        await upstream.aclose()
        metrics.INCOMPLETE.labels(cut_reason(e)).inc()
        return error_page(e, request, site)
    except BaseException:  # from here until Streamed takes it over, the upstream response is ours to close
        await upstream.aclose()
        raise
    if isinstance(response, Streamed):
        response.deadline = deadline
    return response


async def unless_gone(request: Request, sending: Awaitable[httpx.Response]) -> httpx.Response | None:
    """The origin's response, or None when the visitor went away first: a stalling origin must not keep
    a pooled connection for someone who left. Watched only when the request has no body (the body is
    read by the send itself, from the same channel the disconnect comes on)."""
    if _has_body(request):
        return await sending
    response: httpx.Response | None = None
    failure: Exception | None = None

    async def watch(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            response = await sending
        except Exception as e:  # kept apart: the task group would wrap it in an ExceptionGroup
            failure = e
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return response


def _has_body(request: Request) -> bool:
    h = request.headers
    return "transfer-encoding" in h or h.get("content-length", "0").strip() not in ("", "0")


async def respond(
    request: Request,
    site: Site,
    upstream: httpx.Response,
    scheme: str,
    host: str,
    consent: Consent,
    allowed: frozenset[str],
) -> Response | Streamed:
    """The visitor's response: the origin's bytes untouched, or, for a page, gated as it streams."""
    state = request.app.state
    headers = response_headers(upstream, OriginMap(site, f"{scheme}://{host}"))
    body = raw_body(upstream)
    if has_body(request.method, upstream) and "content-type" not in upstream.headers:
        # No Content-Type: the browser sniffs, and would render an HTML page ungated. Sniff it too.
        body, sniffed_html = await sniff_unlabelled(body, upstream.headers.get("content-encoding"))
        if sniffed_html:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"content-type", b"text/html"))
            upstream.headers["content-type"] = "text/html"
    if not is_page(request.method, upstream):
        return Streamed(upstream.status_code, headers, body, upstream)
    decoder = decoder_for(upstream.headers.get("content-encoding"), state.settings.max_page_bytes)
    if decoder is None:  # a page we cannot read cannot be gated: refuse rather than pass it unread
        await upstream.aclose()
        reason = f"Content-Encoding {upstream.headers.get('content-encoding')!r} cannot be decoded for gating"
        return error_page(UpstreamUnavailable(reason), request, site)
    registry, carried = state.registries[site.host], state.carried[site.host]
    # The page's own token: its beacon and its CSP reports count only with it (gate.tokens).
    request.state.gate_token = token = state.page_tokens.mint(ledger.site_label(site), page_path(request))
    plan = page_plan(request, site, registry, consent, carried, allowed, upstream, scheme, host)
    page = request.state.gate_page = PageBody(plan, upstream.headers.get("content-type"), decoder)
    headers = page_headers(headers, carried, allowed)
    headers += csp.response_headers(
        site,
        registry,
        allowed,
        script_nonce(upstream.headers.get_list("content-security-policy")),
        f"{scheme}://{host}",
        token,
    )
    return Streamed(upstream.status_code, headers, _page_chunks(body, page, request), upstream, page=page)


def has_body(method: str, upstream: httpx.Response) -> bool:
    """A response a browser could render. 206 is a byte range of a file (a resumed download), never a
    page a browser renders, so it passes through like any other range."""
    return not (method == "HEAD" or upstream.status_code in (204, 206, 304) or upstream.status_code < 200)


def is_page(method: str, upstream: httpx.Response) -> bool:
    """A page we rewrite: HTML with a body (Content-Length 0 is none: there is nothing to gate)."""
    media_type = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
    empty = upstream.headers.get("content-length", "").strip() == "0"
    return has_body(method, upstream) and media_type in HTML_TYPES and not empty


# WHATWG MIME sniffing, "rules for identifying an unknown MIME type": the HTML signatures.
_HTML_SIGNATURES = tuple(
    s.encode()
    for s in (
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    )
)
SNIFF_BYTES = 512
SNIFF_RAW_BYTES = 256 * 1024  # the most of an unlabelled body held back while sniffing


def looks_like_html(head: bytes) -> bool:
    """What a browser would render as HTML when no Content-Type says otherwise."""
    head = head.lstrip(b"\t\n\x0c\r ").upper()
    return any(head.startswith(sig) and head[len(sig) : len(sig) + 1] in (b" ", b">") for sig in _HTML_SIGNATURES)


async def sniff_unlabelled(
    body: AsyncIterator[bytes], content_encoding: str | None
) -> tuple[AsyncIterator[bytes], bool]:
    """Read up to SNIFF_BYTES of an unlabelled body (decoded) to tell whether it is HTML; the body is
    handed back whole, with what was read put back in front. Bounded both ways: at most SNIFF_RAW_BYTES
    of the body are held, and no more than SNIFF_BYTES are ever decoded (a bomb stays a few KB)."""
    decoder = decoder_for(content_encoding)
    if decoder is None:
        return body, False  # the browser cannot decode it either: it will not render it
    held: list[bytes] = []
    head, held_bytes, readable = b"", 0, True
    async for chunk in body:
        held.append(chunk)
        held_bytes += len(chunk)
        head, readable = _decoded_head(decoder, chunk, head)
        if not readable or len(head) >= SNIFF_BYTES or held_bytes >= SNIFF_RAW_BYTES:
            break

    async def chained() -> AsyncIterator[bytes]:
        for chunk in held:
            yield chunk
        async for chunk in body:
            yield chunk

    return chained(), looks_like_html(head)


def _decoded_head(decoder: Decoder, chunk: bytes, head: bytes) -> tuple[bytes, bool]:
    """``head`` plus what ``chunk`` decodes to, up to SNIFF_BYTES in all; False once the body cannot be
    decoded (what came out before is still judged, as a browser would have rendered it)."""
    try:
        for piece in decoder.feed(chunk):
            head += piece[: SNIFF_BYTES - len(head)]
            if len(head) >= SNIFF_BYTES:
                break
    except IncompleteBody:
        return head, False
    return head, True


def read_consent(request: Request, site: Site, registry: Registry, codec: ConsentCodec) -> Consent:
    return codec.read(
        request.cookies.get(COOKIE_NAME),
        registry,
        gpc=request.headers.get("sec-gpc") == "1",
        opt_out_mode=site.mode == "opt-out",
    )


def form_readers(registry: Registry, consent: Consent, allowed: frozenset[str]) -> frozenset[str]:
    """The allowed tags that read forms, for recipients without the visitor's personal-data consent."""
    return frozenset(
        t for t in allowed if registry.tags[t].reads_forms and registry.tags[t].vendor not in consent.personal_data
    )


def is_form_page(request: Request, site: Site) -> bool:
    """The path is one of the site's form_paths, or gate read a personal-data form there before."""
    state, path = request.app.state, request.url.path
    matcher = state.form_matchers.get(site.host)
    return bool(matcher and matcher.match(path)) or path in state.form_pages[site.host]


def learn_form_page(request: Request, outcome: Outcome | None) -> None:
    if outcome is not None and outcome.form_page:
        site = request.state.gate_site
        request.app.state.form_pages[site.host].put(request.url.path, True)


def count_undeclared(request: Request, outcome: Outcome | None) -> None:
    """Each undeclared third-party host a page named (stripped or, with undeclared = "report", left):
    counted with the CSP's and the guard's attempts, source "html"."""
    attempts = getattr(request.app.state, "attempts", None)
    if outcome is None or not outcome.undeclared or attempts is None:
        return
    site = request.state.gate_site
    for host in sorted(outcome.undeclared):
        attempts.record(csp.Attempt(site.host or "", "", host, "html"))


def cookie_filter(registry: Registry, allowed: frozenset[str]):
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


def head_html(
    registry: Registry, allowed: frozenset[str], nonce: str | None = None, consent: Consent | None = None
) -> str:
    """Injected first in <head>, in this order: the guard that stops refused tags' hosts at run time;
    Google Consent Mode defaults when a Google tag is let through (needs ``consent``); no-op stubs for
    the globals of refused tags, so the page's own calls to gtag(), fbq(), ytag() or criteo_q.push()
    do not throw."""
    defaults = consentmode.script(registry, consent, allowed) if consent is not None else ""
    script = guard.script(registry, allowed) + defaults + stub_script(registry, allowed)
    script += expiry.storage_script(registry, allowed)
    if script and nonce:
        script = script.replace("<script data-gate>", f'<script data-gate nonce="{nonce}">')
    return script


def page_plan(
    request: Request,
    site: Site,
    registry: Registry,
    consent: Consent,
    carried: frozenset[str],
    allowed: frozenset[str],
    upstream: httpx.Response,
    scheme: str,
    host: str,
) -> PagePlan:
    query = request.url.query
    next_path = request.url.path + ("?" + query if query else "")
    base_url = urls.parse(f"{scheme}://{host}{next_path}") or urls.URL(scheme, host, next_path)
    lang = choose_lang(request.query_params.get("gate_lang"), request.headers.get("accept-language"))
    nonce = script_nonce(upstream.headers.get_list("content-security-policy"))
    # Everything injected is absolute on gate's public origin, whatever the page's <base> says. The
    # origin is the one Origin checks, the CSP and rewritten redirects use: public_scheme, else a
    # trusted proxy's X-Forwarded-Proto, else the connection's scheme.
    origin = f"{scheme}://{host}"
    if consent.decided:
        body = render_dock(
            lang=lang,
            next_path=next_path,
            origin=origin,
            notice_link=site.notice_link,
            corner=site.settings_button,
            offset=site.settings_button_offset,
            nonce=nonce,
        )
    else:
        body = render_banner(
            registry,
            consent,
            lang=lang,
            next_path=next_path,
            policy_url=site.policy_url,
            carried=carried,
            origin=origin,
            nonce=nonce,
        )
    token_meta = el("meta", name="gate-token", content=getattr(request.state, "gate_token", None) or "")
    return PagePlan(
        registry=registry,
        allowed=allowed,
        base_url=base_url,
        head_html=token_meta + head_html(registry, allowed, nonce, consent),
        body_html=render_root(body) + beacon.script_tag(request, origin, nonce),
        carry_over=request.app.state.settings.carry_over_bytes,
        personal_data_allowed=site.personal_data,
        form_readers=form_readers(registry, consent, allowed),
    )


def page_path(request: Request) -> str:
    """The path as the browser's location.pathname shows it (still percent-encoded), without the query."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?")[0] if raw else request.url.path


_personal_data_warned: set[tuple[str | None, str]] = set()


def warn_personal_data(request: Request, outcome: Outcome | None) -> None:
    """Once per site and tag: a page carries a script sending hashed e-mail or phone numbers to a
    vendor (a provision of personal data, APPI art. 27/31), and whether gate stripped it."""
    if outcome is None or not outcome.personal_data:
        return
    site = request.app.state.settings.site_for(request.headers.get("host"))
    for tag in sorted(outcome.personal_data):
        if site is None or (site.host, tag) in _personal_data_warned:
            continue
        _personal_data_warned.add((site.host, tag))
        action = (
            "let through: the site sets personal_data = true"
            if site.personal_data
            else "stripped: set personal_data = true for this site only with the visitor's consent to it"
        )
        log.warning(
            "site %s, tag %s: a script on %s sends hashed e-mail or phone numbers (personal data); %s",
            site.host or "(default)",
            tag,
            request.url.path,
            action,
        )


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


# -- the page body ------------------------------------------------------------------------------
class PageBody:
    """Upstream bytes in, the gated page out: undo Content-Encoding, sniff the charset on the first
    bytes (at most 1024 are held back), rewrite in the page's own encoding."""

    def __init__(self, plan: PagePlan, content_type: str | None, decoder: Decoder) -> None:
        self.plan, self.content_type, self.decoder = plan, content_type, decoder
        self.need = charset.bytes_needed(content_type)
        self.head = b""
        self.rewriter: PageRewriter | None = None
        self.stream: charset.Stream | None = None
        self.sniffed: charset.Sniffed | None = None
        self.stopwatch = Stopwatch()  # time spent rewriting, for the access line

    @property
    def outcome(self) -> Outcome | None:
        return self.rewriter.outcome if self.rewriter else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        for piece in self.decoder.feed(data):
            yield from self._page(piece)

    def close(self) -> Iterator[bytes]:
        for piece in self.decoder.close():
            yield from self._page(piece)
        if self.stream is None:
            if not self.head:  # no byte at all: an empty body stays empty, no banner on nothing
                return
            yield from self._page(b"", force=True)
        assert self.stream is not None
        with self.stopwatch:
            tail = self.stream.close()
        if tail:
            yield tail

    def _page(self, piece: bytes, force: bool = False) -> Iterator[bytes]:
        if self.stream is None:
            self.head += piece
            if len(self.head) < self.need and not force:
                return
            piece, self.head = self.head, b""
            self._open(piece)
        assert self.stream is not None
        with self.stopwatch:
            out = self.stream.feed(piece)
        if out:
            yield out

    def _open(self, head: bytes) -> None:
        self.sniffed = charset.detect(self.content_type, head)
        codec = self.sniffed.codec
        if self.sniffed.unknown_label:
            log.info("unknown charset %r, read as %s", self.sniffed.unknown_label, codec)
        if charset.is_ascii_compatible(codec):
            self.rewriter = self.stream = PageRewriter(self.plan, codec)
        else:
            self.rewriter = PageRewriter(self.plan, "utf-8")
            self.stream = charset.Transcoder(self.rewriter, codec)


async def _page_chunks(chunks: AsyncIterator[bytes], page: PageBody, request: Request) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        for out in page.feed(chunk):
            yield out
    for out in page.close():
        yield out
    request.state.gate_outcome = page.outcome
    warn_personal_data(request, page.outcome)
    learn_form_page(request, page.outcome)
    count_undeclared(request, page.outcome)
    ledger.record_page(request, page.outcome)
    if page.outcome is not None and log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s: %s", request.method, request.url.path, page.outcome.header())


def page_headers(
    headers: list[tuple[bytes, bytes]], carried: frozenset[str], allowed: frozenset[str]
) -> list[tuple[bytes, bytes]]:
    """A rewritten page's headers: identity, no validators, private to this visitor, and Gate-Tags."""
    cache_control = [v.decode("latin-1") for k, v in headers if k == b"cache-control"]
    vary = [v.decode("latin-1") for k, v in headers if k == b"vary"]
    out = [(k, v) for k, v in headers if k not in _PAGE_DROP]
    out.append((b"cache-control", private_cache_control(cache_control).encode("latin-1")))
    out.append((b"vary", vary_cookie(vary).encode("latin-1")))
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


def vary_cookie(values: list[str]) -> str:
    """The origin's Vary plus Cookie and Accept-Language (the banner's language follows it)."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if "*" in names:
        return "*"
    lower = {n.lower() for n in names}
    names += [n for n in ("Cookie", "Accept-Language") if n.lower() not in lower]
    return ", ".join(names)


# -- responses ------------------------------------------------------------------------------------
class Streamed:
    """Streams ``body`` to the visitor and closes the upstream response whatever happens: at the end,
    on a failure mid-body, and when the visitor goes away (uvicorn's send() just returns then, so a
    watcher on receive() is what notices)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes],
        upstream: httpx.Response,
        page: PageBody | None = None,
    ) -> None:
        self.status, self.headers, self.body, self.upstream = status, headers, body, upstream
        self.page = page
        self.deadline = math.inf  # upstream_response_timeout: when the whole response must be over
        self.started = False  # whether the headers went out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with anyio.CancelScope(deadline=self.deadline) as overdue:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch, receive, tg.cancel_scope)
                    await self._send(send, scope)
                    tg.cancel_scope.cancel()
            if overdue.cancelled_caught:
                # A trickle (a byte now and then) never trips the read timeout; this ends it.
                log.warning("upstream response overdue for %s %s: cut", scope["method"], scope["path"])
                if not self.started:
                    page = error_page(UpstreamTimeout(_OVERDUE), Request(scope), self._site(scope))
                    await page(scope, _no_receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body.aclose()  # type: ignore[attr-defined]
                await self.upstream.aclose()

    async def _watch(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        log.debug("client went away mid-stream")
        scope.cancel()

    async def _send(self, send: Send, scope: Scope) -> None:
        if self.page is None:
            self.started = True
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        try:
            async for chunk in self.body:
                if not self.started:  # a page: its first bytes are out of the sniffer, so its charset is known
                    self.started = True
                    await send({"type": "http.response.start", "status": self.status, "headers": self._page_headers()})
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as e:
            reason = cut_reason(e)
            metrics.INCOMPLETE.labels(reason).inc()
            log.warning(
                "response cut (%s) for %s %s, %s: %s",
                reason,
                scope["method"],
                scope["path"],
                "after its first bytes" if self.started else "before any byte",
                _reason(e),
            )
            if not self.started:  # nothing sent yet: the visitor can still get a proper error page
                shown = e if isinstance(e, (PageTooLarge, UpstreamTimeout)) else UpstreamUnavailable(_reason(e))
                await error_page(shown, Request(scope), self._site(scope))(scope, _no_receive, send)
            # Otherwise headers are gone: ending the body normally would hand the visitor a
            # complete-looking, truncated page. Returning without the last message drops the connection
            # (no final chunk), and nothing more is added to the page.
            return
        if not self.started:
            self.started = True
            await send({"type": "http.response.start", "status": self.status, "headers": self._page_headers()})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _site(scope: Scope) -> Site:
        return scope["app"].state.settings.site_for(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))

    def _page_headers(self) -> list[tuple[bytes, bytes]]:
        """The page's headers, its Content-Type naming the charset it was read in: gate injects its
        scripts first in <head>, which can push a <meta charset> past the 1024 bytes a browser
        prescans, so the header must say it."""
        sniffed = self.page.sniffed if self.page is not None else None
        label = charset.label_for(sniffed.codec) if sniffed is not None else None
        if label is None:
            return self.headers
        out = []
        for k, v in self.headers:
            if k.lower() == b"content-type":
                media = v.split(b";")[0].strip()
                v = media + b"; charset=" + label.encode()
            out.append((k, v))
        return out


def cut_reason(e: UpstreamError) -> str:
    """The label a cut response is counted under in gate_incomplete_responses_total."""
    if isinstance(e, IncompleteBody):
        return e.reason
    return "timeout" if isinstance(e, UpstreamTimeout) else "origin_closed"


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


def _reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


_ERROR_TEXT = {
    502: (
        "ページを表示できません",
        "サイトのサーバーに接続できませんでした。しばらくしてから、もう一度お試しください。",
        "Bad gateway",
        "The site's server could not be reached. Please try again in a moment.",
    ),
    504: (
        "応答がありません",
        "サイトのサーバーが時間内に応答しませんでした。しばらくしてから、もう一度お試しください。",
        "Gateway timeout",
        "The site's server did not answer in time. Please try again in a moment.",
    ),
}
_TOO_LARGE_TEXT = (
    "ページが大きすぎます",
    "このページは大きすぎるため表示できません。",
    "Page too large",
    "This page is too large to be shown.",
)


def busy(error: ShareExceeded, request: Request, site: Site) -> Response:
    """503 when a visitor or a path has its whole share of the upstream pool under way."""
    log.warning(
        "503 for %s %s from %s: this %s has its share of the upstream pool (%s) under way",
        request.method,
        request.url.path,
        request.client.host if request.client else "?",
        error.what,
        site.upstream,
    )
    return PlainTextResponse(
        "503 Service Unavailable: too many requests under way. Please retry in a moment.\n",
        503,
        headers={"retry-after": str(RETRY_AFTER), "cache-control": "no-store"},
    )


def error_page(error: UpstreamError, request: Request, site: Site) -> HTMLResponse:
    """502 / 504 in Japanese and English; the reason goes to the log, never to the visitor."""
    log.warning("upstream %s failed for %s %s: %s", site.upstream, request.method, request.url.path, _reason(error))
    texts = _TOO_LARGE_TEXT if isinstance(error, PageTooLarge) else _ERROR_TEXT[error.status]
    ja_title, ja_text, en_title, en_text = texts
    html = (
        f'<!doctype html><html lang="ja"><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{error.status} {en_title}</title>"
        f"<h1>{ja_title}</h1><p>{ja_text}</p>"
        f'<h1 lang="en">{en_title}</h1><p lang="en">{en_text}</p></html>\n'
    )
    return HTMLResponse(html, error.status, headers={"cache-control": "no-store"})
