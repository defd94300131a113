"""Proof of consent: every decision writes a receipt (consent id, time, site, policy version, choices,
how it was given, the page's path). No IP address, no user agent.

api.py awaits ``record_decision`` after each decision, before the cookie is set: the receipt is fsynced
to the local journal (gate.journal), then written to the store by the flusher, which retries while the
store is slow or down. The cookie waits for the journal, never for the store. When the receipt cannot
be kept (too many wait for the store, the journal's disk fails) the decision is refused with 503 and
Retry-After. The same call counts the decision in the ledger.

Look-ups: ``GET /_gate/receipts/<consent id>`` (report token), ``gate receipts show <id>`` and
``gate receipts export --since … --format csv|jsonl``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import time
from collections.abc import Iterable
from typing import IO
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..banner import choose_lang, recipients
from ..consent import Consent, shown_purposes
from ..context import SiteContext, gate_of
from ..errors import RequestError
from ..pages import shown_text
from .access import unauthorized  # the same guard as the report
from .ledger import site_label
from .recorder import ReceiptsFull
from .store import RECEIPT_COLUMNS, Receipt

FORMATS = ("csv", "jsonl")
RETRY_AFTER = 5  # seconds, on every 503 about the store


async def record_decision(
    request: Request, ctx: SiteContext, previous: Consent, consent: Consent, choice: str, lang: str | None = None
) -> None:
    """Keep the receipt of one decision (journaled and fsynced before this returns) and count it;
    ``previous`` is the consent before it (a withdrawal keeps the id of the consent it withdraws),
    ``lang`` the language the form was shown in (else Accept-Language decides, as it did for the page).
    RequestError(503) when the receipt cannot be kept: the decision must then not be acknowledged."""
    recorder = gate_of(request).recorder
    if recorder is None:
        return
    site, registry, carried = ctx.site, ctx.registry, ctx.carried
    shown = shown_purposes(registry)  # a receipt names only purposes the visitor could see
    accepted = [p for p in shown if consent.purposes.get(p)] if consent.decided else []
    method = consent.method if consent.decided else _method(request)
    lang = choose_lang(lang, request.headers.get("accept-language"))
    source = "page" if page_path(request).startswith("/_gate/preferences") else "banner"
    text = shown_text(site, registry, previous, carried, lang, source) if method in ("banner", "page") else ""
    label = site_label(site)
    receipt = Receipt(
        rid=receipt_id(),
        consent_id=consent.consent_id or previous.consent_id,
        at=consent.decided_at if consent.decided and consent.decided_at else int(time.time()),
        site=label,
        policy_version=consent.version,
        choice=choice,
        accepted=",".join(sorted(accepted)),
        refused=",".join(p for p in shown if p not in accepted),
        vendors_refused=",".join(sorted(consent.vendors_refused)),
        method=method,
        page=recorder.expander.template(page) if (page := page_path(request)) else "",
        text_hash=hashlib.sha256(text.encode()).hexdigest() if text else "",
        lang=lang,
        gpc=int(request.headers.get("sec-gpc") == "1"),
        recipients="; ".join(recipients(registry, carried)),
        personal_data=",".join(sorted(consent.personal_data)) if consent.decided else "",
    )
    try:
        await recorder.keep_receipt(receipt)
    except ReceiptsFull as e:
        raise RequestError(
            503, f"your choice cannot be recorded right now ({e}); please try again shortly", retry_after=RETRY_AFTER
        ) from None
    recorder.ledger.decision(
        label, choice, method, frozenset(accepted) if consent.decided else None, registry.refusable
    )


def receipt_id() -> str:
    """Random, and sorting as made: receipts of one second keep their order."""
    return f"{time.time_ns():016x}-{secrets.token_hex(6)}"


def page_path(request: Request) -> str:
    """The path (never the query) of the page the decision came from: the Referer, already checked to be
    the site's own. Empty when the site's Referrer-Policy withholds it."""
    referer = request.headers.get("referer", "")
    return (urlsplit(referer).path or "/")[:512] if referer else ""


def _method(request: Request) -> str:
    """How a withdrawal was made: forms come from the banner or the preferences page, the rest is API."""
    if request.method == "POST" and request.headers.get("content-type", "").startswith("application/x-www-form"):
        return "page" if page_path(request).startswith("/_gate/preferences") else "banner"
    return "api"


# -- reading them back ------------------------------------------------------------------------------
def write(receipts: Iterable[Receipt], out: IO[str], fmt: str) -> int:
    """Receipts as CSV (with a header row) or JSON lines; returns how many were written."""
    n = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(RECEIPT_COLUMNS)
        for r in receipts:
            writer.writerow([getattr(r, c) for c in RECEIPT_COLUMNS])
            n += 1
    elif fmt == "jsonl":
        for r in receipts:
            out.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
            n += 1
    else:
        raise ValueError(f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return n


async def lookup(request: Request) -> Response:
    if (denied := unauthorized(request)) is not None:
        return denied
    recorder = gate_of(request).recorder
    if recorder is None:
        return JSONResponse({"error": "recording is off"}, 404, headers={"cache-control": "no-store"})
    consent_id = request.path_params["consent_id"][:64]
    found, answered = await recorder.find_receipts(consent_id)
    if not answered and not found:
        return JSONResponse(
            {"error": "the store is unavailable; gate keeps retrying"},
            503,
            headers={"cache-control": "no-store", "retry-after": str(RETRY_AFTER)},
        )
    body: dict = {"consent_id": consent_id, "receipts": [r.as_dict() for r in found]}
    if not answered:
        body["incomplete"] = True  # only what still waits for the store: older receipts may exist
    return JSONResponse(body, 200 if found else 404, headers={"cache-control": "no-store"})


def routes() -> list[BaseRoute]:
    return [Route("/_gate/receipts/{consent_id}", lookup, methods=["GET"])]
