"""create_app(settings): the only place that wires gate's parts together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Mount

from . import api, proxy, vendors
from .consent import ConsentCodec
from .settings import Settings
from .upstream import Upstream


def create_app(settings: Settings) -> Starlette:
    """The ASGI app for ``settings``: /_gate/ first, then every other path and method to the proxy.

    Shared state on ``app.state``: settings, registry, codec, registries and carried (per site, keyed
    by Site.host), and upstream (the pooled clients, opened and closed by the lifespan)."""
    registry = vendors.load(settings.vendors_path)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.upstream = Upstream(settings)
        try:
            yield
        finally:
            await app.state.upstream.aclose()

    # A Mount, not a Route: a Route lists its methods, and the proxy takes every method there is.
    catch_all = Mount("", app=proxy.app)
    app = Starlette(routes=[*api.routes(), catch_all], lifespan=lifespan)
    app.state.settings = settings
    app.state.registry = registry
    app.state.codec = ConsentCodec(settings.secret_keys, max_age=settings.consent_max_age_days * 24 * 3600)
    # Per site, once: a site's GTM container may serve other purposes, which changes its policy version.
    app.state.registries = {s.host: registry.with_tag_purposes(s.tag_purposes) for s in settings.sites}
    app.state.carried = {s.host: app.state.registries[s.host].carried(s.vendors, s.tags) for s in settings.sites}
    return app
