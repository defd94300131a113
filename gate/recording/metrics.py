"""GET /_gate/metrics: Prometheus text format through prometheus-client.

The counters move at flush time, from the ledger's batch, never on the request path; so a scrape lags
the traffic by at most ``flush_interval``. (The beacon results and the incomplete responses are counted
as they happen: they are rare, and not the ledger's.) With ``--workers N`` every worker writes its values to files
in PROMETHEUS_MULTIPROC_DIR (``gate serve`` prepares one) and a scrape, whichever worker answers it, adds
them all up. The endpoint needs the report token, like the report: the numbers are the business's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..context import visit_of
from .access import unauthorized  # the report's guard
from .metrics_setup import MULTIPROC_ENV
from .store import Batch

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PAGES = Counter("gate_pages", "HTML pages gate rewrote, by whether the banner was shown", ["site", "banner"])
TAGS = Counter(
    "gate_tags",
    "Tags by outcome: served, stripped (on pages), fired (in browsers), attempted "
    "(stopped by the guard or reported by CSP)",
    ["site", "tag", "outcome"],
)
LEAKS = Counter("gate_field_leaks", "Tags seen firing in a browser whose visitor had refused them", ["site", "tag"])
UNDECLARED = Counter("gate_undeclared_hosts", "Contacts with third-party hosts vendors.toml does not declare", ["site"])
UNCERTAIN = Counter(
    "gate_uncertain_strips", "Elements stripped because gate could not be sure what they load", ["site"]
)
DECISIONS = Counter("gate_decisions", "Consent decisions", ["site", "choice", "method"])
REJECTED = Counter(
    "gate_rejected_submissions",
    "Beacons, CSP reports and consent posts not counted, by "
    "endpoint:reason (no or bad page token, replayed, rate limited …)",
    ["site", "reason"],
)
BEACONS = Counter("gate_beacons", "POST /_gate/beacon by result", ["result"])
STORE_FAILURES = Counter("gate_store_failures", "Flushes the store refused or could not take (retried)")
INCOMPLETE = Counter(
    "gate_incomplete_responses",
    "Responses gate could not deliver whole, by reason: truncated or "
    "corrupt coding, too_large (max_page_bytes), origin_closed (reset, short of Content-Length), "
    "timeout",
    ["reason"],
)
RECEIPTS_SPOOLED = Counter("gate_receipts_spooled", "Receipts written to the spool file at shutdown, store unreachable")
UPSTREAM = Histogram("gate_upstream_seconds", "From the request to the origin's response headers", buckets=_SECONDS)
REWRITE = Histogram("gate_rewrite_seconds", "Time the rewriter spent on one page", buckets=_SECONDS)


def observe(batch: Batch, upstream_seconds: Iterable[float] = (), rewrite_seconds: Iterable[float] = ()) -> None:
    """Move the counters by one flush's batch (called once per batch, whether the store took it or not)."""
    sums: dict[tuple, float] = {}

    def add(key: tuple, n: float) -> None:
        sums[key] = sums.get(key, 0) + n

    for (site, _, _, banner, _), n in batch.pages.items():
        add((PAGES, site, "shown" if banner else "hidden"), n)
    for (site, _, _, tag, outcome, _), n in batch.tags.items():
        add((TAGS, site, tag, outcome), n)
    for (site, _, kind, subject), n in batch.findings.items():
        if kind == "leak":
            add((LEAKS, site, subject), n)
        elif kind == "undeclared_host":
            add((UNDECLARED, site), n)
        elif kind == "uncertain":
            add((UNCERTAIN, site), n)
        elif kind == "rejected":
            add((REJECTED, site, subject), n)
    for (site, _, choice, method), n in batch.decisions.items():
        add((DECISIONS, site, choice, method), n)
    for (metric, *labels), value in sums.items():
        metric.labels(*labels).inc(value)
    for seconds in upstream_seconds:
        UPSTREAM.observe(seconds)
    for seconds in rewrite_seconds:
        REWRITE.observe(seconds)


class Timing:
    """ASGI middleware: after each proxied response, the origin's latency and the rewriter's time that
    the proxy left on the request's Visit (gate.context: ``upstream_seconds``, ``page.stopwatch``) go to
    the ledger, to be observed into the histograms at flush. Nothing is measured twice."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            visit = visit_of(scope.get("state"))
            if visit is not None and visit.upstream_seconds is not None and "app" in scope:
                recorder = scope["app"].state.gate.recorder
                if recorder is not None:
                    rewrite = visit.page.stopwatch.seconds if visit.page is not None else None
                    recorder.ledger.timing(visit.upstream_seconds, rewrite)


async def metrics(request: Request) -> Response:
    if (denied := unauthorized(request)) is not None:
        return denied
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})


def routes() -> list[BaseRoute]:
    return [Route("/_gate/metrics", metrics, methods=["GET"])]
