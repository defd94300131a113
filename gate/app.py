"""create_app(settings): the only place that wires gate's parts together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from . import api, csp, csp_report, proxy, vendors
from .consent import ConsentCodec
from .context import Gate
from .forwarded import ForwardedMiddleware
from .later import LATER
from .limits import Limits
from .logs import AccessLog
from .pages_text import words_digest
from .readiness import Readiness, draining_on_signals
from .recording import beacon, metrics, receipts, recorder, report
from .settings import Settings, form_path_matcher
from .shares import Shares
from .tokens import PageTokens
from .upstream import Upstream


def create_app(settings: Settings) -> Starlette:
    """The ASGI app for ``settings``: /_gate/ first, then every other path and method to the proxy.

    Shared state is one typed object, ``app.state.gate`` (gate.context.Gate): settings, the codec,
    per-site registries and carried tags, the pools and stores; the lifespan opens the upstream pool
    and the recorder and closes them, and /_gate/readyz reports draining from SIGTERM or the start of
    shutdown."""
    gate = build_gate(settings)
    # Outermost first: the request as the visitor made it (trusted X-Forwarded-*), then the access line,
    # then the origin latency and rewrite time for /_gate/metrics.
    middleware = [
        Middleware(ForwardedMiddleware, proxies=settings.trusted_proxies),
        Middleware(AccessLog, settings=settings),
        Middleware(metrics.Timing),
    ]
    app = Starlette(routes=routes(), middleware=middleware, lifespan=lifespan(gate))
    app.state.gate = gate
    return app


def routes() -> list[BaseRoute]:
    """/_gate/ routes first (recording's before the /_gate mount), then the proxy. The proxy is not a
    Route: a Route lists its methods, and the proxy takes every method there is."""
    recording = [*beacon.routes(), *report.routes(), *metrics.routes(), *receipts.routes()]
    return [*recording, *csp_report.routes(), *api.routes(), proxy.CatchAll()]


def lifespan(gate: Gate) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Opens the upstream pool and the recorder (the ledger's flusher and the store; None when off),
    reports draining from SIGTERM, and closes both with a last flush of what was counted."""

    @asynccontextmanager
    async def running(app: Starlette) -> AsyncIterator[None]:
        gate.upstream = Upstream(gate.settings)
        await recorder.start(gate)
        try:
            with draining_on_signals(gate.readiness):
                yield
                gate.readiness.drain()
        finally:
            LATER.run()  # the access lines still held (gate.later)
            await gate.upstream.aclose()
            await recorder.stop(gate)

    return running


def build_gate(settings: Settings) -> Gate:
    """The app's shared parts. Per site, once: its registry (a site's GTM container may serve other
    purposes, which changes its policy version) and the tags it carries."""
    registry = vendors.load(settings.vendors_path)
    registries = {
        s.host: registry.with_tag_purposes(s.tag_purposes).with_site_words(
            s.information, s.information_en, s.tag_cookies
        )
        for s in settings.sites
    }
    carried = {s.host: registries[s.host].carried(s.vendors, s.tags) for s in settings.sites}
    return Gate(
        settings=settings,
        registry=registry,
        codec=ConsentCodec(
            settings.secret_keys,
            max_age=settings.consent_max_age_days * 24 * 3600,
            reconsent_age=settings.reconsent_days * 24 * 3600,
        ),
        # Each site's policy version hashes what it carries and says (consent.py: what asks again).
        registries={
            s.host: registries[s.host]
            .for_site(carried[s.host], words_digest(s.mode))
            .with_undeclared(s.own_hosts, s.strips_undeclared)
            for s in settings.sites
        },
        carried=carried,
        # Application-form pages: configured (form_paths) and found while reading pages (bounded, per process).
        form_matchers={s.host: form_path_matcher(s.form_paths) for s in settings.sites},
        form_pages={s.host: vendors.Memo(4096) for s in settings.sites},
        readiness=Readiness(settings),
        shares=Shares(settings),  # of the upstream pool, per visitor and per path
        page_tokens=PageTokens(settings.secret_keys),  # what a beacon or CSP report must carry
        limits=Limits(recorder.limits_path(settings.store)),  # shared by every worker of the host
        attempts=csp.Attempts(),  # CSP and guard reports; the ledger reads attempted_counts()
    )
