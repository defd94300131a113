"""POST /_gate/csp-report: the violation reports of gate's CSP and of the guard (gate.csp describes
what is counted and why). The endpoint lives apart from gate.csp so that the policy and the counting
import no server library (tests/test_layers.py)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .api import check_origin, read_body, take_limit  # api's rules for consent posts hold here too
from .context import gate_of
from .csp import (
    MAX_ATTEMPTS_PER_REPORT,
    MAX_REPORT_BODY,
    REPORT_PATH,
    REPORT_TYPES,
    REPORTS_BURST,
    REPORTS_PER_MINUTE,
    attempts_in,
    blocked,
)
from .errors import RequestError
from .recording.ledger import record_rejection, site_label
from .tokens import MAX_AGE as TOKEN_MAX_AGE
from .tokens import QUERY as TOKEN_QUERY
from .tokens import Rejected

_REASONS = {403: "origin", 413: "too_large", 415: "media_type"}


async def csp_report(request: Request) -> Response:
    """-> 204. 403 unless from the site's own pages with the page's token, 413 over 16 KB, 415 not a
    report type, 429 past the client's share (every worker's together)."""
    gate = gate_of(request)
    try:
        ctx = gate.context(request)  # UnknownSite: 421
        site = ctx.site
        try:
            check_origin(request, ctx.origin)
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type not in REPORT_TYPES:
                raise RequestError(415, "expected application/csp-report or application/reports+json")
            body = await read_body(request, MAX_REPORT_BODY)
            token = gate.page_tokens.check(request.query_params.get(TOKEN_QUERY), site_label(site))
        except RequestError as e:
            record_rejection(request, site, "csp", _REASONS.get(e.status, str(e.status)))
            raise
        except Rejected as e:
            record_rejection(request, site, "csp", e.reason)
            raise RequestError(
                403, f"not counted ({e.reason}): a report needs the token of a page gate served"
            ) from None
        found = attempts_in(blocked(body, media_type), ctx.registry, site.host or "")
        found = found[:MAX_ATTEMPTS_PER_REPORT]
        # Each blocked load counts once per page view, however often it is reported.
        keys = [f"c:{token.nonce}:{a.vendor}:{a.host}:{a.source}" for a in found]
        reason, fresh = await take_limit(
            request, "csp", REPORTS_PER_MINUTE, REPORTS_BURST, keys, time.time() + TOKEN_MAX_AGE
        )
        if reason is not None:
            record_rejection(request, site, "csp", reason)
            if reason == "rate_limited":
                raise RequestError(429, "too many reports from this client", retry_after=1)
            if reason == "unavailable":
                raise RequestError(503, "reports cannot be checked right now", retry_after=5)
            raise RequestError(403, "not counted (replayed): these loads were counted already")
    except RequestError as e:
        return PlainTextResponse(e.message + "\n", e.status, headers=e.headers)
    counted = set(fresh)
    for key, attempt in zip(keys, found, strict=True):
        if key in counted:
            gate.attempts.record(attempt)
    return Response(status_code=204, headers={"cache-control": "no-store"})


def routes() -> list[BaseRoute]:
    return [Route(REPORT_PATH, csp_report, methods=["POST"])]
