"""The report: one site, a range of days, read from the store.

    GET /_gate/report        HTML (ja/en), charts drawn here as inline SVG: no script, no external style
    GET /_gate/report.json   the same numbers as data
    GET /_gate/report.csv    the same numbers, one row per stored count: site,day,table,key,detail,count
        ?site=<host or *>&since=<YYYY-MM-DD or 7d>&until=<YYYY-MM-DD>   (default: this site, 30 days)

All of them need the report token (gate.recording.access). Never cached.

``gate report`` prints the same tables in a terminal (cli_report.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..banner import choose_lang
from ..context import gate_of
from ..vendors import Registry
from .access import HEADERS as _HEADERS
from .access import unauthorized
from .ledger import site_label
from .receipts import RETRY_AFTER
from .store import QUERIES, Store, StoreError

CHOICES = ("accept_all", "custom", "reject_all", "withdraw")
OUTCOMES = ("served", "stripped", "fired", "attempted")
FINDINGS = ("leak", "undeclared_host", "unattributed_host", "uncertain", "personal_data", "rejected")
MAX_DAYS = 800
DEFAULT_DAYS = 30
_RELATIVE = re.compile(r"^(\d{1,4})d$")


# -- which days ------------------------------------------------------------------------------------
def parse_day(text: str, today: dt.date, what: str = "since") -> dt.date:
    """``YYYY-MM-DD``, or ``Nd`` (the last N days, today included); ValueError naming what is expected."""
    m = _RELATIVE.match(text.strip())
    if m:
        return today - dt.timedelta(days=max(int(m.group(1)), 1) - 1)
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{what}: expected a date such as 2025-04-01 or a number of days such as 7d, got {text!r}"
        ) from None


def day_range(since: str | None, until: str | None, today: dt.date | None = None) -> tuple[str, str]:
    today = today or dt.datetime.now(dt.UTC).date()
    last = parse_day(until, today, "until") if until else today
    first = parse_day(since, today, "since") if since else last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValueError("since: must not be after until")
    if (last - first).days >= MAX_DAYS:
        raise ValueError(f"since: at most {MAX_DAYS} days at a time")
    return first.isoformat(), last.isoformat()


# -- the numbers -----------------------------------------------------------------------------------
def collect(store: Store, site: str, first: str, last: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored count for the report, as rows (in the worker thread)."""
    raw = {name: store.query(name, site, first, last) for name in QUERIES}
    raw["examples"] = store.examples(site)
    return raw


def summarize(
    raw: dict[str, list[tuple[Any, ...]]], site: str, first: str, last: str, registry: Registry, carried: Iterable[str]
) -> dict[str, Any]:
    """The report as data: what /_gate/report.json returns and the page and the terminal show."""
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    per_day: dict[str, dict[str, Any]] = {
        d: {
            "day": d,
            "pages": 0,
            "banner_shown": 0,
            "gpc_default": 0,
            "beacons": 0,
            "decisions": dict.fromkeys(CHOICES, 0),
        }
        for d in days
    }
    for day, banner, gpc, n in raw["pages"]:
        per_day[day]["pages"] += n
        per_day[day]["banner_shown"] += n if banner else 0
        per_day[day]["gpc_default"] += n if gpc else 0
    decisions: dict[str, dict[str, int]] = {c: {} for c in CHOICES}
    for day, choice, method, n in raw["decisions"]:
        per_day[day]["decisions"][choice] = per_day[day]["decisions"].get(choice, 0) + n
        decisions.setdefault(choice, {})[method] = decisions.setdefault(choice, {}).get(method, 0) + n
    for d in per_day.values():
        answered = sum(d["decisions"].get(c, 0) for c in ("accept_all", "custom", "reject_all"))
        d["accept_all_rate"] = _rate(d["decisions"]["accept_all"], answered)

    # Only the purposes the banner offered (a carried tag uses them): a decision says nothing about the rest
    carried = set(carried)
    offered = {p for t in carried if t in registry.tags for p in registry.tags[t].purposes}
    purposes: dict[str, dict[str, int]] = {p: {"accepted": 0, "refused": 0} for p in registry.refusable if p in offered}
    for _, purpose, accepted, n in raw["purposes"]:
        if purpose in purposes:
            purposes[purpose]["accepted" if accepted else "refused"] += n

    tags = {t: _tag_row(registry, t) for t in registry.tags if t in carried}
    for _, tag, outcome, reason, n in raw["tags"]:
        row = tags.setdefault(tag, _tag_row(registry, tag))
        row[outcome] = row.get(outcome, 0) + n
        if outcome in ("stripped", "attempted") and reason:
            by = row["stripped_by" if outcome == "stripped" else "attempted_by"]
            by[reason] = by.get(reason, 0) + n

    findings: dict[tuple[str, str], dict[str, Any]] = {}
    beacons = 0
    for day, kind, subject, n in raw["findings"]:
        if kind == "beacons":
            per_day[day]["beacons"] += n
            beacons += n
            continue
        f = findings.setdefault((kind, subject), {"kind": kind, "subject": subject, "count": 0, "examples": []})
        f["count"] += n
    for kind, subject, path, day in raw["examples"]:
        if (kind, subject) in findings:
            findings[(kind, subject)]["examples"].append({"path": path, "day": day})
    for (kind, subject), f in findings.items():
        if kind == "leak" and subject in tags:
            tags[subject]["field_leaks"] += f["count"]
    for row in tags.values():
        row["fire_rate"] = _rate(row["fired"], row["served"])

    pages = sum(d["pages"] for d in per_day.values())
    return {
        "site": site,
        "from": first,
        "to": last,
        "totals": {
            "pages": pages,
            "banner_shown": sum(d["banner_shown"] for d in per_day.values()),
            "gpc_default": sum(d["gpc_default"] for d in per_day.values()),
            "beacons": beacons,
            "decisions": sum(sum(m.values()) for m in decisions.values()),
            "field_leaks": sum(f["count"] for f in findings.values() if f["kind"] == "leak"),
            "undeclared_hosts": sum(1 for f in findings.values() if f["kind"] == "undeclared_host"),
            "uncertain_strips": sum(f["count"] for f in findings.values() if f["kind"] == "uncertain"),
            "rejected": sum(f["count"] for f in findings.values() if f["kind"] == "rejected"),
        },
        # Beacons, CSP reports and consent posts not counted, by "<endpoint>:<reason>" (gate.tokens)
        "rejected": dict(sorted((f["subject"], f["count"]) for f in findings.values() if f["kind"] == "rejected")),
        "days": list(per_day.values()),
        "decisions": {
            c: {"total": sum(m.values()), "by_method": dict(sorted(m.items()))} for c, m in decisions.items()
        },
        "purposes": [
            {"purpose": p, **c, "rate": _rate(c["accepted"], c["accepted"] + c["refused"])} for p, c in purposes.items()
        ],
        "tags": list(tags.values()),
        "findings": sorted(
            findings.values(),
            key=lambda f: (FINDINGS.index(f["kind"]) if f["kind"] in FINDINGS else 99, -f["count"], f["subject"]),
        ),
        "pages": [{"path": p, "pages": n} for p, n in sorted(raw["paths"], key=lambda r: (-r[1], r[0]))[:20]],
    }


def _tag_row(registry: Registry, tag_id: str) -> dict[str, Any]:
    tag = registry.tags.get(tag_id)
    return {
        "tag": tag_id,
        "vendor": tag.vendor if tag else "",
        "service_ja": tag.service_ja if tag else tag_id,
        "service_en": tag.service_en if tag else tag_id,
        **dict.fromkeys(OUTCOMES, 0),
        "field_leaks": 0,
        "stripped_by": {},
        "attempted_by": {},
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def to_csv(raw: dict[str, list[tuple[Any, ...]]], site: str) -> str:
    """One row per stored count: ``site,day,table,key,detail,count`` (a pivot table's favourite shape)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["site", "day", "table", "key", "detail", "count"])
    for day, banner, gpc, n in sorted(raw["pages"]):
        w.writerow([site, day, "pages", "banner_shown" if banner else "banner_hidden", "gpc" if gpc else "", n])
    for day, tag, outcome, reason, n in sorted(raw["tags"]):
        w.writerow([site, day, "tags", tag, f"{outcome}:{reason}" if reason else outcome, n])
    for day, choice, method, n in sorted(raw["decisions"]):
        w.writerow([site, day, "decisions", choice, method, n])
    for day, purpose, accepted, n in sorted(raw["purposes"]):
        w.writerow([site, day, "purposes", purpose, "accepted" if accepted else "refused", n])
    for day, kind, subject, n in sorted(raw["findings"]):
        w.writerow([site, day, "findings", kind, subject, n])
    return out.getvalue()


# -- the routes ------------------------------------------------------------------------------------
async def _load(request: Request) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]], Registry] | Response:
    if (denied := unauthorized(request)) is not None:
        return denied
    gate = gate_of(request)
    recorder = gate.recorder
    if recorder is None:
        return PlainTextResponse(
            'Recording is off (store = "off"): there is nothing to report.\n', 404, headers=_HEADERS
        )
    store = await recorder.open_store()
    if store is None:
        return _unavailable()
    sites = {site_label(s): s for s in gate.settings.sites}
    label = request.query_params.get("site") or site_label(gate.site_for(request.headers.get("host")))
    if label not in sites:
        return PlainTextResponse(f"site: expected one of {', '.join(sites)}, got {label!r}\n", 400, headers=_HEADERS)
    try:
        first, last = day_range(request.query_params.get("since"), request.query_params.get("until"))
    except ValueError as e:
        return PlainTextResponse(f"{e}\n", 400, headers=_HEADERS)
    try:
        raw = await recorder.call(collect, store, label, first, last)
    except (StoreError, TimeoutError):
        return _unavailable()
    host = sites[label].host
    data = summarize(raw, label, first, last, gate.registries[host], gate.carried[host])
    data["sites"] = list(sites)
    return data, raw, gate.registries[host]


def _unavailable() -> Response:
    return PlainTextResponse(
        "The store is unavailable; gate keeps retrying (see the log).\n",
        503,
        headers=_HEADERS | {"retry-after": str(RETRY_AFTER)},
    )


async def report_json(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    return JSONResponse(loaded[0], headers=_HEADERS)


async def report_csv(request: Request) -> Response:
    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    data, raw, _ = loaded
    name = f"gate-report-{data['site'].replace('*', 'default')}-{data['from']}-{data['to']}.csv"
    return Response(
        to_csv(raw, data["site"]),
        media_type="text/csv; charset=utf-8",
        headers=_HEADERS | {"content-disposition": f'attachment; filename="{name}"'},
    )


async def report_html(request: Request) -> Response:
    from .report_page import render  # the page's markup and charts

    loaded = await _load(request)
    if isinstance(loaded, Response):
        return loaded
    data, _, registry = loaded
    lang = choose_lang(request.query_params.get("gate_lang"), request.headers.get("accept-language"))
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"
    return HTMLResponse(render(data, lang, registry), headers=_HEADERS | {"content-security-policy": csp})


def routes() -> list[BaseRoute]:
    return [
        Route("/_gate/report", report_html, methods=["GET"]),
        Route("/_gate/report.json", report_json, methods=["GET"]),
        Route("/_gate/report.csv", report_csv, methods=["GET"]),
    ]


# -- in a terminal ---------------------------------------------------------------------------------
def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Plain, aligned columns (numbers to the right): readable in a terminal and through a pipe."""
    cells = [[str(h) for h in headers]] + [["" if v is None else _cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, float) else str(v)


def _is_number(s: str) -> bool:
    return bool(re.match(r"^-?[\d.]+%?$", s)) or s == ""


def text_report(data: dict[str, Any]) -> str:
    t = data["totals"]
    parts = [
        f"gate report: site {data['site']}, {data['from']} to {data['to']} (UTC days)",
        "",
        text_table(
            [
                "pages",
                "banner shown",
                "GPC default",
                "beacons",
                "decisions",
                "field leaks",
                "undeclared hosts",
                "uncertain strips",
                "rejected",
            ],
            [
                [
                    t["pages"],
                    t["banner_shown"],
                    t["gpc_default"],
                    t["beacons"],
                    t["decisions"],
                    t["field_leaks"],
                    t["undeclared_hosts"],
                    t["uncertain_strips"],
                    t["rejected"],
                ]
            ],
        ),
        "",
        "Decisions",
        text_table(
            ["choice", "total", "by method"],
            [
                [c, d["total"], ", ".join(f"{m} {n}" for m, n in d["by_method"].items())]
                for c, d in data["decisions"].items()
            ],
        ),
        "",
        "Purposes",
        text_table(
            ["purpose", "accepted", "refused", "rate"],
            [[p["purpose"], p["accepted"], p["refused"], p["rate"]] for p in data["purposes"]],
        ),
        "",
        "Tags",
        text_table(
            ["tag", "served", "stripped", "fired", "attempted", "fire rate", "field leaks"],
            [
                [r["tag"], r["served"], r["stripped"], r["fired"], r["attempted"], r["fire_rate"], r["field_leaks"]]
                for r in data["tags"]
            ],
        ),
    ]
    if data["findings"]:
        parts += [
            "",
            "Findings",
            text_table(
                ["kind", "subject", "count", "example pages"],
                [
                    [f["kind"], f["subject"] or "-", f["count"], " ".join(e["path"] for e in f["examples"])]
                    for f in data["findings"]
                ],
            ),
        ]
    return "\n".join(parts) + "\n"
