"""The HTTP contract under /_gate/ (public: other tools and tests rely on it).

GET    /_gate/consent      -> 200 {"version", "decided", "purposes": {id: bool}, "vendors_refused": [..],
                                  "personal_data": [vendor id..]}
POST   /_gate/consent      form: choice=accept_all|reject_all|custom|withdraw, purposes=<id>..,
                                 refuse_vendor=<id>.., personal_data=<vendor id>.. (custom only: never
                                 implied by accept_all), next=<same-origin path>, source=page, lang=ja|en
                                 -> 303 to next (anything off-site or odd -> /)
                           JSON: {"choice": ..} | {"purposes": {id: bool}, "vendors_refused": [..],
                                  "personal_data": [..]}
                                 -> 200 with the state
                           403 unless Origin (else Referer) is the site's own; 413 over
                           max_consent_body; 400 naming unknown purpose or vendor ids;
                           429 + Retry-After past 20 decisions a minute per client address;
                           503 + Retry-After when the receipt cannot be kept (nothing is set)
DELETE /_gate/consent      -> 200, undecided again (cookie deleted)
GET    /_gate/preferences, /_gate/notice   -> gate.pages
GET    /_gate/healthz      -> 200 "ok"
GET    /_gate/readyz       -> 200 "ready" | 503 "not ready: <reasons>" (draining, no origin answers)
GET    /_gate/static/*     -> gate/static/, cached for a year (URLs carry a content hash)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from . import expiry, readiness, urls
from .consent import COOKIE_NAME, Consent, decide, undecided
from .context import gate_of, read_consent
from .errors import RequestError
from .limits import Unavailable
from .recording import receipts
from .recording.ledger import record_rejection
from .settings import Site

log = logging.getLogger("gate.api")
STATIC_DIR = Path(__file__).resolve().parent / "static"
CONSENT_PER_MINUTE, CONSENT_BURST = 20.0, 20.0  # decisions per client address: a person makes a few
CHOICES = ("accept_all", "reject_all", "custom", "withdraw")
_NO_STORE = {"cache-control": "no-store"}


class _ConsentRequest:
    """A request to /_gate/consent: its site (gate.context, 421 decided there) and the visitor's
    consent as the cookie has it now."""

    def __init__(self, request: Request) -> None:
        gate = gate_of(request)
        self.ctx = ctx = gate.context(request)
        self.site, self.registry, self.carried, self.codec = ctx.site, ctx.registry, ctx.carried, gate.codec
        self.scheme, self.origin = ctx.scheme, ctx.origin
        self.host, self.sent_cookies = request.url.hostname or "", list(request.cookies)  # for expiry
        self.current = read_consent(request, gate.codec, ctx)


def _context(request: Request) -> _ConsentRequest:
    return _ConsentRequest(request)


Endpoint = Callable[[Request], Awaitable[Response]]


def _errors(endpoint: Endpoint) -> Endpoint:
    """RequestError -> a short plain-text answer with its status."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RequestError as e:
            return PlainTextResponse(e.message + "\n", e.status, headers=e.headers)

    wrapped.__name__ = endpoint.__name__
    return wrapped


# -- /_gate/consent -----------------------------------------------------------------------------
@_errors
async def get_consent(request: Request) -> Response:
    return JSONResponse(_context(request).current.as_public(), headers=_NO_STORE)


@_errors
async def post_consent(request: Request) -> Response:
    ctx = _context(request)
    check_origin(request, ctx.origin)
    await limit_decisions(request, ctx.site)
    body = await read_body(request, gate_of(request).settings.max_consent_body)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    lang = None
    if media_type == "application/json":
        choice, accepted, refused, vendors, personal = _from_json(body)
        consent = _decision(ctx, choice, accepted, vendors, "api", also_named=refused, personal_data=personal)
        response: Response = JSONResponse(consent.as_public(), headers=_NO_STORE)
    elif media_type == "application/x-www-form-urlencoded":
        form = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=200)

        def values(name: str) -> list[str]:
            return [v for k, v in form if k == name]

        choice = (values("choice") or [""])[-1]
        method = "page" if "page" in values("source") else "banner"
        consent = _decision(
            ctx, choice, values("purposes"), values("refuse_vendor"), method, personal_data=values("personal_data")
        )
        lang = values("lang")[-1] if values("lang") else None
        response = RedirectResponse(urls.safe_next((values("next") or ["/"])[-1], ctx.origin), 303, headers=_NO_STORE)
    else:
        raise RequestError(415, "expected an application/x-www-form-urlencoded form or application/json")
    await receipts.record_decision(request, ctx.ctx, ctx.current, consent, choice, lang)  # durable before the cookie
    return _with_cookie(response, ctx, consent)


@_errors
async def delete_consent(request: Request) -> Response:
    ctx = _context(request)
    check_origin(request, ctx.origin)
    await limit_decisions(request, ctx.site)
    consent = _decision(ctx, "withdraw", [], [], "api")
    await receipts.record_decision(request, ctx.ctx, ctx.current, consent, "withdraw")
    return _with_cookie(JSONResponse(consent.as_public(), headers=_NO_STORE), ctx, consent)


async def take_limit(
    request: Request, bucket: str, per_minute: float, burst: float, once: Sequence[str] = (), expires: float = 0.0
) -> tuple[str | None, list[str]]:
    """gate.limits' take() for this client (shared by every worker), in a worker thread;
    ("unavailable", []) when the shared limits cannot be used."""
    client = request.client.host if request.client else ""
    try:
        return await anyio.to_thread.run_sync(
            gate_of(request).limits.take, f"{bucket}:{client}", per_minute, burst, once, expires
        )
    except Unavailable as e:
        log.error("shared limits unavailable: %s", e)
        return "unavailable", []


async def limit_decisions(request: Request, site: Site) -> None:
    """At most CONSENT_PER_MINUTE decisions per client (429 past that). When the shared limits cannot
    be read, the decision goes through: a visitor's choice matters more than a flood's cost."""
    reason, _ = await take_limit(request, "consent", CONSENT_PER_MINUTE, CONSENT_BURST)
    if reason == "rate_limited":
        record_rejection(request, site, "consent", reason)
        raise RequestError(
            429,
            "too many consent decisions from this address; try again shortly",
            retry_after=int(60 / CONSENT_PER_MINUTE) + 1,
        )


def check_origin(request: Request, origin: str) -> None:
    """Consent changes only from the site's own pages: Origin, else Referer, must be its public origin."""
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if referer:
            parts = urlsplit(referer)
            claimed = f"{parts.scheme}://{parts.netloc}"
    if claimed is None or _origin(claimed) != _origin(origin):
        raise RequestError(403, "consent may only be changed from this site's own pages (Origin or Referer)")


def _origin(value: str) -> str:
    value = value.strip().lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if value.startswith(scheme) and value.endswith(port):
            return value[: -len(port)]
    return value


async def read_body(request: Request, cap: int) -> bytes:
    """The body, refused with 413 past ``cap`` bytes whether or not Content-Length told the truth."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > cap:
        raise RequestError(413, f"body larger than {cap} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise RequestError(413, f"body larger than {cap} bytes")
    return bytes(body)


def _from_json(body: bytes) -> tuple[str, list[str], list[str], list[str], list[str]]:
    """(choice, accepted purposes, refused purposes, refused vendors, personal-data vendors) from JSON."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError(400, 'expected a JSON object such as {"choice": "accept_all"}')
    purposes, vendors = data.get("purposes", {}), data.get("vendors_refused", [])
    if not isinstance(purposes, dict) or not all(isinstance(v, bool) for v in purposes.values()):
        raise RequestError(400, 'expected "purposes" as {id: true|false}')
    if not isinstance(vendors, list) or not all(isinstance(v, str) for v in vendors):
        raise RequestError(400, 'expected "vendors_refused" as a list of vendor ids')
    personal = data.get("personal_data", [])
    if not isinstance(personal, list) or not all(isinstance(v, str) for v in personal):
        raise RequestError(400, 'expected "personal_data" as a list of vendor ids')
    choice = data.get("choice", "custom" if {"purposes", "vendors_refused", "personal_data"} & set(data) else "")
    if not isinstance(choice, str):
        raise RequestError(400, f'expected "choice" as one of {", ".join(CHOICES)}')
    accepted = [p for p, ok in purposes.items() if ok]
    return choice, accepted, [p for p, ok in purposes.items() if not ok], vendors, personal


def _decision(
    ctx: _ConsentRequest,
    choice: str,
    purposes: list[str],
    vendors: list[str],
    method: str,
    also_named: Sequence[str] = (),
    personal_data: Sequence[str] = (),
) -> Consent:
    """The consent ``choice`` makes; ``also_named``: purpose ids refused by name, checked like the rest
    (a typo must not pass silently just because it was refused)."""
    registry = ctx.registry
    unknown_p = sorted({p for p in [*purposes, *also_named] if p not in registry.purposes})
    unknown_v = sorted({v for v in [*vendors, *personal_data] if v not in registry.vendors})
    named = [
        f"unknown {kind} ids: {', '.join(ids)} (known: {', '.join(known)})"
        for kind, ids, known in (("purpose", unknown_p, registry.purposes), ("vendor", unknown_v, registry.vendors))
        if ids
    ]
    if named:
        raise RequestError(400, "; ".join(named))
    if choice == "withdraw":
        return undecided(registry, gpc=ctx.current.gpc, opt_out_mode=ctx.current.opt_out_mode)
    if choice == "accept_all":
        return decide(registry, registry.refusable, method=method, previous=ctx.current)
    if choice == "reject_all":
        return decide(registry, (), method=method, previous=ctx.current)
    if choice == "custom":
        return decide(
            registry,
            purposes,
            vendors_refused=vendors,
            method=method,
            previous=ctx.current,
            personal_data=personal_data,
        )
    raise RequestError(400, f"unknown choice {choice!r} (expected one of {', '.join(CHOICES)})")


def _with_cookie(response: Response, ctx: _ConsentRequest, consent: Consent) -> Response:
    secure = ctx.scheme == "https"
    if consent.decided:
        response.set_cookie(
            COOKIE_NAME,
            ctx.codec.dumps(consent),
            max_age=ctx.codec.lifetime,
            path="/",
            secure=secure,
            httponly=True,
            samesite="lax",
        )
    else:
        response.delete_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="lax")
    # The cookies of every tag this decision refuses, HttpOnly ones included (gate/expiry.py).
    refused = expiry.refused_cookies(ctx.registry, consent.allowed_tags(ctx.registry, ctx.carried), ctx.sent_cookies)
    for line in expiry.expiry_headers(refused, ctx.host, secure):
        response.headers.append("set-cookie", line)
    return response


# -- the rest ---------------------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def preferences(request: Request) -> Response:
    # Imported on first use: the contract stands without the pages module.
    from .pages import preferences as page

    return await page(request)


async def notice(request: Request) -> Response:
    from .pages import notice as page

    return await page(request)


class Static(StaticFiles):
    """gate/static/, cached for a year: the banner's URLs carry a content hash, so a change is a new URL."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def routes() -> list[BaseRoute]:
    return [
        Mount(
            "/_gate",
            routes=[
                Route("/consent", get_consent, methods=["GET"]),
                Route("/consent", post_consent, methods=["POST"]),
                Route("/consent", delete_consent, methods=["DELETE"]),
                Route("/preferences", preferences, methods=["GET"]),
                Route("/notice", notice, methods=["GET"]),
                Route("/healthz", healthz, methods=["GET"]),
                Route("/readyz", readiness.readyz, methods=["GET"]),
                Mount("/static", app=Static(directory=STATIC_DIR, check_dir=False), name="static"),
            ],
        )
    ]
