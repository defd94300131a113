"""What the visitor sees when gate cannot deliver the origin's answer: 502 / 504 / page-too-large in
Japanese and English (the reason goes to the log, never to the visitor), the 503 of a visitor or
path over its share of the upstream pool, and the metric label of a cut response."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from .errors import IncompleteBody, PageTooLarge, UpstreamError, UpstreamTimeout
from .settings import Site
from .shares import ShareExceeded

log = logging.getLogger("gate.proxy")  # the request path's logger, as before the split

OVERDUE = "no complete response within upstream_response_timeout"
RETRY_AFTER = 2  # seconds, in the 503 of a visitor or path over its share of the upstream pool


def cut_reason(e: UpstreamError) -> str:
    """The label a cut response is counted under in gate_incomplete_responses_total."""
    if isinstance(e, IncompleteBody):
        return e.reason
    return "timeout" if isinstance(e, UpstreamTimeout) else "origin_closed"


def reason_of(e: BaseException) -> str:
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
    log.warning("upstream %s failed for %s %s: %s", site.upstream, request.method, request.url.path, reason_of(error))
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
