"""The catch-all endpoint: every request that is not under /_gate/, top to bottom.

site by Host -> consent from the cookie -> forward -> HTML: decode, sniff the charset, rewrite as it
streams, send identity and private | anything else: the origin's bytes, untouched and streamed.

The ``Gate-Tags`` header. Headers leave before the body, and the rewriter only knows what it met on
the page once the body has gone through it, so the header cannot report the page's outcome without
buffering the page (which we refuse to do). It states the decision instead, computed from the
visitor's consent before the first byte: among the tags this site carries,
``Gate-Tags: kept=google.analytics; stripped=criteo.onetag,facebook.pixel`` means "let through /
stripped for this visitor". What the rewriter actually met on this page is logged (debug) and left on
the request's ``Visit`` (gate.context) after the stream, for whoever keeps the ledger.
"""

from __future__ import annotations

import contextlib
import logging
import time

import anyio
import httpx
from starlette.datastructures import URLPath
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from . import consentmode, csp, encoders, expiry, guard, urls
from .banner import cached_banner, cached_dock, choose_lang, el, render_root
from .consent import Consent
from .context import Gate, SiteContext, UnknownSite, Visit, gate_of, read_consent
from .decoders import decoder_for
from .errorpages import OVERDUE, busy, cut_reason, error_page
from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .headers import consent_header, cookie_filter, page_headers, script_nonce
from .inject import stub_script
from .matcher import remembered
from .pagebody import PageBody, page_chunks
from .recording import beacon, ledger, metrics
from .rewrite import Outcome, PagePlan
from .settings import Site
from .shares import ShareExceeded
from .sniff import has_body, is_page, sniff_unlabelled
from .streamed import Presence, Streamed
from .upstream import origin_map, raw_body, response_headers, sent_all
from .vendors import Registry

log = logging.getLogger("gate.proxy")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app behind every path that is not /_gate/, for every method."""
    request = Request(scope, receive, send)
    gate = gate_of(request)
    response: Response | Streamed
    if sum(name == b"host" for name, _ in scope["headers"]) > 1:
        # Which one names the site? A front proxy and gate could each believe another.
        response = PlainTextResponse("400 Bad Request: more than one Host header.\n", 400)
        await response(scope, receive, send)
        return
    try:
        ctx = gate.context(request)
    except UnknownSite:
        response = PlainTextResponse("421 Misdirected Request: gate serves no site for this Host.\n", 421)
        await response(scope, receive, send)
        return
    client = request.client.host if request.client else ""
    presence = Presence(receive)  # one watcher of the visitor's connection for the whole request
    try:
        async with gate.shares.claim(client, f"{ctx.site.host or ''} {scope['path']}"):
            response = await handle(request, gate, ctx, presence)
            await response(scope, receive, send)
        return
    except ShareExceeded as e:
        response = busy(e, request, ctx.site)
    finally:
        presence.close()
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


async def handle(request: Request, gate: Gate, ctx: SiteContext, presence: Presence) -> Response | Streamed:
    deadline = anyio.current_time() + gate.settings.upstream_response_timeout
    site, registry = ctx.site, ctx.registry
    consent = read_consent(request, gate.codec, ctx)
    allowed = consent.allowed_tags(registry, ctx.carried)
    if is_form_page(request, gate, ctx):  # an application form: tags that read it need their own consent
        allowed -= form_readers(registry, consent, allowed)
    visit = Visit(ctx, consent, allowed)
    visit.keep(
        request.scope.setdefault("state", {})
    )  # for the ledger, the access line and the metrics, after the stream
    started = time.perf_counter()
    upstream: httpx.Response | None = None
    try:
        # One scope ends the wait at the response deadline, and when the visitor goes away meanwhile (a
        # stalling origin must not keep a pooled connection for someone who left). The visitor is only
        # watched when the request has no body: the body is read by the send itself, from the same
        # channel the disconnect comes on.
        with (
            anyio.CancelScope(deadline=deadline) as waiting,
            presence.cancelling(waiting) if not _has_body(request) else contextlib.nullcontext(),
        ):
            upstream = await gate.pool().send(
                request, ctx, cookie_filter(registry, allowed), [(b"gate-consent", consent_header(consent).encode())]
            )
        if upstream is None and presence.gone:
            log.info("client went away while the origin was answering: %s %s", request.method, request.url.path)
            return Response(status_code=499)  # never sent: nobody is there
        if upstream is None:
            return error_page(UpstreamTimeout(OVERDUE), request, site)
    except UpstreamError as e:
        return error_page(e, request, site)
    except ClientDisconnect:
        log.info("client went away during the request body: %s %s", request.method, request.url.path)
        return Response(status_code=400)
    finally:
        visit.upstream_seconds = time.perf_counter() - started  # for the access line
    try:
        response = await respond(request, gate, visit, upstream, presence)
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


def _has_body(request: Request) -> bool:
    h = request.headers
    return "transfer-encoding" in h or h.get("content-length", "0").strip() not in ("", "0")


async def respond(
    request: Request, gate: Gate, visit: Visit, upstream: httpx.Response, presence: Presence
) -> Response | Streamed:
    """The visitor's response: the origin's bytes untouched, or, for a page, gated as it streams."""
    ctx = visit.site
    headers = response_headers(upstream, origin_map(gate.origin_maps, ctx.site, ctx.origin))
    body = raw_body(upstream)
    content_type = upstream.headers.get("content-type")
    if content_type is None and has_body(request.method, upstream):
        # No Content-Type: the browser sniffs, and would render an HTML page ungated. Sniff it too.
        body, sniffed_html = await sniff_unlabelled(body, upstream.headers.get("content-encoding"))
        if sniffed_html:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
            headers.append((b"content-type", b"text/html"))
            content_type = "text/html"
    if not is_page(request.method, upstream, content_type):
        return Streamed(upstream.status_code, headers, body, upstream, ctx.site, presence=presence)
    decoder = decoder_for(upstream.headers.get("content-encoding"), gate.settings.max_page_bytes)
    if decoder is None:  # a page we cannot read cannot be gated: refuse rather than pass it unread
        await upstream.aclose()
        reason = f"Content-Encoding {upstream.headers.get('content-encoding')!r} cannot be decoded for gating"
        return error_page(UpstreamUnavailable(reason), request, ctx.site)
    # The page's own token: its beacon and its CSP reports count only with it (gate.tokens).
    visit.token = gate.page_tokens.mint(ledger.site_label(ctx.site), page_path(request))
    nonce = script_nonce(upstream.headers.get_list("content-security-policy"))
    plan = page_plan(request, gate, visit, nonce=nonce)
    page = visit.page = PageBody(plan, content_type, decoder)
    compress = ctx.site.compress == "auto"
    encoder = encoders.encoder_for(request.headers.get("accept-encoding")) if compress else None
    headers = page_headers(headers, ctx.carried, visit.allowed, compress, encoder.coding if encoder else None)
    headers += csp.response_headers(ctx.site, ctx.registry, visit.allowed, nonce, ctx.origin, visit.token)
    return Streamed(
        upstream.status_code,
        headers,
        page_chunks(body, page, encoder, sent_all(upstream)),
        upstream,
        ctx.site,
        page=page,
        presence=presence,
        after=lambda: page_finished(request, gate, visit, page.outcome),  # once the last byte is out
    )


def form_readers(registry: Registry, consent: Consent, allowed: frozenset[str]) -> frozenset[str]:
    """The allowed tags that read forms, for recipients without the visitor's personal-data consent."""
    return frozenset(
        t for t in allowed if registry.tags[t].reads_forms and registry.tags[t].vendor not in consent.personal_data
    )


def is_form_page(request: Request, gate: Gate, ctx: SiteContext) -> bool:
    """The path is one of the site's form_paths, or gate read a personal-data form there before."""
    path = request.url.path
    matcher = gate.form_matchers.get(ctx.site.host)
    return bool(matcher and matcher.match(path)) or path in gate.form_pages[ctx.site.host]


def page_finished(request: Request, gate: Gate, visit: Visit, outcome: Outcome | None) -> None:
    """After a page's last byte went out: what the rewriter met goes on the visit, to the log, the
    form pages learnt, the undeclared-host counts and the ledger."""
    visit.outcome = outcome
    if outcome is not None:
        warn_personal_data(request, visit.site.site, outcome)
        if outcome.form_page:
            gate.form_pages[visit.site.site.host].put(request.url.path, True)
        # Each undeclared third-party host a page named (stripped or, with undeclared = "report",
        # left): counted with the CSP's and the guard's attempts, source "html".
        for host in sorted(outcome.undeclared):
            gate.attempts.record(csp.Attempt(visit.site.site.host or "", "", host, "html"))
    ledger.record_page(request, visit)
    if outcome is not None and log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s: %s", request.method, request.url.path, outcome.header())


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


def page_plan(request: Request, gate: Gate, visit: Visit, *, nonce: str | None) -> PagePlan:
    """What the rewriter does to this page for this visit: the tags it lets through, the base URL
    the page's relative URLs resolve against, and what it injects (the banner or the settings dock,
    the guard, the beacon), carrying the origin's script ``nonce`` when its CSP has one."""
    ctx, consent, allowed = visit.site, visit.consent, visit.allowed
    site, registry = ctx.site, ctx.registry
    query = request.url.query
    next_path = request.url.path + ("?" + query if query else "")
    base_url = page_url(f"{ctx.origin}{next_path}") or urls.URL(ctx.scheme, ctx.netloc, next_path)
    gate_lang = request.query_params.get("gate_lang") if query else None
    lang = choose_lang(gate_lang, request.headers.get("accept-language"))
    # Everything injected is absolute on gate's public origin, whatever the page's <base> says (the
    # origin Origin checks, the CSP and rewritten redirects use: SiteContext.origin).
    origin = ctx.origin
    if consent.decided:
        body = cached_dock(
            lang=lang,
            next_path=next_path,
            origin=origin,
            notice_link=site.notice_link,
            corner=site.settings_button,
            offset=site.settings_button_offset,
            nonce=nonce,
        )
    else:
        body = cached_banner(
            registry,
            consent,
            lang=lang,
            next_path=next_path,
            policy_url=site.policy_url,
            carried=ctx.carried,
            origin=origin,
            nonce=nonce,
        )
    token_meta = el("meta", name="gate-token", content=visit.token or "")
    beacon_tag = beacon.script_tag(origin, visit.token, nonce) if gate.recorder is not None else ""
    return PagePlan(
        registry=registry,
        allowed=allowed,
        base_url=base_url,
        head_html=token_meta + head_html(registry, allowed, nonce, consent),
        body_html=render_root(body) + beacon_tag,
        carry_over=gate.settings.carry_over_bytes,
        personal_data_allowed=site.personal_data,
        form_readers=form_readers(registry, consent, allowed),
    )


# urls.parse(raw) of a page's URL: a site's pages are asked for again and again.
page_url = remembered(urls.parse)


def page_path(request: Request) -> str:
    """The path as the browser's location.pathname shows it (still percent-encoded), without the query."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1").split("?")[0] if raw else request.url.path


_personal_data_warned: set[tuple[str | None, str]] = set()


def warn_personal_data(request: Request, site: Site, outcome: Outcome) -> None:
    """Once per site and tag: a page carries a script sending hashed e-mail or phone numbers to a
    vendor (a provision of personal data, APPI art. 27/31), and whether gate stripped it."""
    for tag in sorted(outcome.personal_data):
        if (site.host, tag) in _personal_data_warned:
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
