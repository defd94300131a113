"""/_gate/preferences and /_gate/notice: plain pages generated from vendors.toml, no JavaScript needed.

The notice is the 外部送信 publication (電気通信事業法 第27条の12): one row per tag the site carries, so
what it says and what the rewriter lets through come from the same registry and cannot drift apart.

Per recipient the preferences page offers ``refuse_vendor=<id>`` checkboxes (ticked = refused), not an
"allow" switch: a plain form cannot send an unticked box, and this way the form maps onto
POST /_gate/consent one to one, with JavaScript off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from . import urls
from .banner import (
    CSS_URL,
    Html,
    choose_lang,
    el,
    join,
    notice_url,
    personal_data_rows,
    preferences_url,
    render_banner,
    services_by_vendor,
    static_url,
    text_of,
)
from .consent import Consent
from .context import UnknownSite, gate_of, read_consent
from .pages_text import ERRORS, TEXT
from .settings import Site
from .vendors import Registry

PAGES_CSS_URL = static_url("pages.css")
JST = timezone(timedelta(hours=9), "JST")
HEADERS = {
    "Cache-Control": "no-store",  # the page shows this visitor's consent
    "Vary": "Cookie, Accept-Language",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class PageView:
    """What both pages need about the request, read once."""

    site: Site
    registry: Registry
    consent: Consent
    carried: frozenset[str]
    lang: str
    switch_href: str  # this page in the other language
    recording: bool = False  # a store is on: each decision's receipt can be looked up by its consent id


def _page_view(request: Request) -> PageView | Response:
    gate = gate_of(request)
    lang = choose_lang(request.query_params.get("gate_lang"), request.headers.get("accept-language"))
    try:
        ctx = gate.context(request)
    except UnknownSite:
        return HTMLResponse(error_page(421, lang), status_code=421, headers=HEADERS)
    query = dict(request.query_params) | {"gate_lang": "en" if lang == "ja" else "ja"}
    return PageView(
        ctx.site,
        ctx.registry,
        read_consent(request, gate.codec, ctx),
        ctx.carried,
        lang,
        request.url.path + "?" + urlencode(query),
        gate.recorder is not None,
    )


def _page(v: PageView | None, lang: str, title: str, *body: str) -> str:
    switch = el("p", el("a", TEXT[lang]["other_lang"], href=v.switch_href)) if v else ""
    head = el(
        "head",
        el("meta", charset="utf-8"),
        el("meta", name="viewport", content="width=device-width,initial-scale=1"),
        el("title", title),
        el("link", rel="stylesheet", href=CSS_URL),
        el("link", rel="stylesheet", href=PAGES_CSS_URL),
    )
    main = el("main", el("h1", title), *body, switch, class_="gate-main")
    return "<!doctype html>\n" + el("html", head, el("body", main, class_="gate"), lang=lang)


def _links(v: PageView, t: dict, *extra: Html) -> Html:
    return el(
        "p",
        join(
            " ", [el("a", t["notice"], href=notice_url(v.lang)), el("a", t["policy"], href=v.site.policy_url), *extra]
        ),
        class_="gate-links",
    )


# -- preferences ---------------------------------------------------------------------------------
def _state(v: PageView, t: dict) -> list[Html]:
    c = v.consent
    if not c.decided:
        lines = [el("p", t["undecided"])]
    else:
        when = datetime.fromtimestamp(c.decided_at, JST).strftime(t["time"])
        # The receipt of each decision is filed under this id (gate/receipts.py), unless store = "off"
        lines = [
            el("p", t["decided"].format(time=when, method=t["methods"].get(c.method, c.method))),
            el(
                "p",
                t["consent_id"],
                el("code", c.consent_id),
                t["consent_id_receipt" if v.recording else "consent_id_help"],
                class_="gate-consent-id",
            ),
        ]
    if not c.decided and c.gpc:
        lines.append(el("p", t["gpc"], class_="gate-note"))
    if v.site.mode == "opt-out":
        lines.append(el("p", t["opt_out_prefs"], class_="gate-note"))
    return lines


def _purpose_fields(v: PageView, t: dict) -> Html:
    refusable, rows = v.registry.refusable, [el("legend", t["purposes_legend"])]
    for p in v.registry.purposes.values():
        name, summary = (p.ja, p.summary_ja) if v.lang == "ja" else (p.en, p.summary_en)
        if not p.refusable:
            rows.append(
                el(
                    "label",
                    el("input", type="checkbox", checked=True, disabled=True),
                    " ",
                    el("b", name),
                    t["always"],
                    class_="gate-sw",
                )
            )
            rows.append(el("p", summary, class_="gate-who"))
            continue
        used = services_by_vendor(v.registry, v.carried, p.id, v.lang)
        if not used:
            continue
        rows.append(
            el(
                "label",
                el(
                    "input",
                    type="checkbox",
                    name="purposes",
                    value=p.id,
                    checked=v.consent.allows_purpose(p.id, refusable),
                    aria_describedby=f"m-{p.id} d-{p.id}",
                ),
                " ",
                el("b", name),
                class_="gate-sw",
            )
        )
        rows.append(el("p", summary, id=f"m-{p.id}", class_="gate-who"))
        rows.append(
            el(
                "ul",
                *(
                    el("li", v.registry.vendors[vid].recipient + t["colon"] + t["sep"].join(s))
                    for vid, s in used.items()
                ),
                id=f"d-{p.id}",
                class_="gate-who",
            )
        )
    return el("fieldset", *rows)


def _vendor_fields(v: PageView, t: dict) -> Html:
    rows = [el("legend", t["vendors_legend"]), el("p", t["vendors_help"])]
    for vendor in v.registry.vendors.values():
        services = [v.registry.tags[tid] for tid in vendor.tags if tid in v.carried]
        if not services:
            continue
        names = t["sep"].join(s.service_ja if v.lang == "ja" else s.service_en for s in services)
        rows.append(
            el(
                "label",
                el(
                    "input",
                    type="checkbox",
                    name="refuse_vendor",
                    value=vendor.id,
                    checked=vendor.id in v.consent.vendors_refused,
                    aria_describedby=f"s-{vendor.id}",
                ),
                " ",
                el("b", t["refuse_vendor"].format(recipient=vendor.recipient)),
                class_="gate-sw",
            )
        )
        rows.append(el("p", names, id=f"s-{vendor.id}", class_="gate-who"))
    return el("fieldset", *rows)


def _personal_data_fields(v: PageView) -> Html | str:
    rows = personal_data_rows(v.registry, v.carried, v.lang, v.consent.personal_data)
    return el("fieldset", *rows) if rows else ""


async def preferences(request: Request) -> Response:
    """GET /_gate/preferences: the visitor's settings as one plain form."""
    v = _page_view(request)
    if isinstance(v, Response):
        return v
    t = TEXT[v.lang]
    next_path = urls.safe_next(request.query_params.get("next") or "/", f"{request.url.scheme}://{request.url.netloc}")
    # Save first: Enter in a checkbox submits with the form's first button. Then the banner's two answers.
    buttons = [
        el("button", t["save"], type="submit", name="choice", value="custom", class_="gate-btn"),
        el("button", t["accept"], type="submit", name="choice", value="accept_all", class_="gate-btn"),
        el("button", t["reject"], type="submit", name="choice", value="reject_all", class_="gate-btn"),
    ]
    withdraw = v.site.mode != "opt-out"  # in opt-out mode "no choice" means "sent": withdrawing would not stop anything
    if withdraw:
        buttons.append(el("button", t["withdraw"], type="submit", name="choice", value="withdraw", class_="gate-btn"))
    form = el(
        "form",
        el("input", type="hidden", name="next", value=next_path),
        el("input", type="hidden", name="source", value="page"),
        el("input", type="hidden", name="lang", value=v.lang),
        _purpose_fields(v, t),
        _vendor_fields(v, t),
        _personal_data_fields(v),
        el("div", *buttons, class_="gate-row"),
        el("p", t["withdraw_help"]) if withdraw else "",
        method="post",
        action="/_gate/consent",
    )
    body = [*_state(v, t), form, _links(v, t, el("a", t["back"], href=next_path))]
    return HTMLResponse(_page(v, v.lang, t["prefs_title"], *body), headers=HEADERS)


def shown_text(
    site: Site, registry: Registry, consent: Consent, carried: frozenset[str], lang: str, source: str
) -> str:
    """The words a visitor deciding from ``source`` ("banner" or "page") was shown, as text: what a
    receipt's text_hash is taken over."""
    if source == "banner":
        return text_of(
            render_banner(
                registry, consent, lang=lang, next_path="/", policy_url=site.policy_url, carried=carried, origin=""
            )
        )  # the words, not the URLs
    v = PageView(site, registry, consent, carried, lang, "")
    t = TEXT[lang]
    return text_of(join("", [*_state(v, t), _purpose_fields(v, t), _vendor_fields(v, t), _personal_data_fields(v)]))


# -- notice --------------------------------------------------------------------------------------
def notice_rows(registry: Registry, consent: Consent, carried: frozenset[str], lang: str) -> list[dict]:
    """The notice's data, one row per carried tag (the JSON form is exactly this)."""
    ja, refusable, rows = lang == "ja", registry.refusable, []
    for tag in registry.tags.values():
        if tag.id not in carried:
            continue
        vendor = registry.vendors[tag.vendor]
        rows.append(
            {
                "tag": tag.id,
                "vendor": vendor.id,
                "service": tag.service_ja if ja else tag.service_en,
                "recipient": vendor.recipient,
                "contact": vendor.contact_ja if ja else (vendor.contact_en or vendor.contact_ja),
                "information": list(tag.information_ja if ja else (tag.information_en or tag.information_ja)),
                "purposes": [
                    {"id": p.id, "name": p.ja if ja else p.en}
                    for p in registry.purposes.values()
                    if p.id in tag.purposes
                ],
                "recipient_purpose": tag.recipient_purpose_ja
                if ja
                else (tag.recipient_purpose_en or tag.recipient_purpose_ja),
                "privacy_url": vendor.privacy_url,
                "optout_url": tag.optout_url or vendor.optout_url,
                "allowed": consent.allows(tag, refusable),
                "country": vendor.country,
                "country_name": vendor.country_ja if ja else vendor.country_en,
                "reads_forms": tag.reads_forms,
                "personal_data_allowed": tag.vendor in consent.personal_data,
            }
        )
    return rows


def _row(r: dict, t: dict) -> Html:
    h = t["columns"]
    links = [el("li", el("a", t["privacy"], href=r["privacy_url"]))] if r["privacy_url"] else []
    links += [el("li", el("a", t["optout"], href=r["optout_url"]))] if r["optout_url"] else []
    cells = [
        el("th", r["service"], scope="row"),
        el(
            "td",
            r["recipient"],
            el("br"),
            t["contact"].format(contact=r["contact"]),
            el("br"),
            t["country"].format(country=r["country_name"]),
            data_label=h[1],
        ),
        el("td", el("ul", *(el("li", i) for i in r["information"])), data_label=h[2]),
        el("td", el("ul", *(el("li", p["name"]) for p in r["purposes"])), data_label=h[3]),
        el("td", r["recipient_purpose"], data_label=h[4]),
        el("td", el("ul", *links), data_label=h[5]),
        el("td", el("b", t["sent"] if r["allowed"] else t["not_sent"]), data_label=h[6]),
    ]
    return el("tr", *cells, id=r["tag"])


def _abroad(v: PageView, t: dict) -> list[Html]:
    """APPI art. 28: per foreign recipient, its country, that country's regime and its measures."""
    ja = v.lang == "ja"
    items = []
    for vendor in v.registry.vendors.values():
        if vendor.abroad and any(tid in v.carried for tid in vendor.tags):
            items.append(
                el(
                    "li",
                    el("b", vendor.recipient),
                    el("br"),
                    t["abroad_country"],
                    vendor.country_ja if ja else vendor.country_en,
                    el("br"),
                    t["abroad_regime"],
                    vendor.regime_ja if ja else (vendor.regime_en or vendor.regime_ja),
                    el("br"),
                    t["abroad_measures"],
                    vendor.measures_ja if ja else (vendor.measures_en or vendor.measures_ja),
                    id=f"abroad-{vendor.id}",
                )
            )
    if not items:
        return []
    return [el("h2", t["abroad_title"]), el("p", t["abroad_intro"]), el("ul", *items, class_="gate-abroad")]


def _forms(v: PageView, t: dict, rows: list[dict]) -> list[Html]:
    readers = [r for r in rows if r["reads_forms"]]
    if not readers:
        return []
    return [
        el("h2", t["forms_title"]),
        el("p", t["forms"]),
        el("ul", *(el("li", r["service"], t["colon"], r["recipient"]) for r in readers), class_="gate-forms"),
    ]


def _glossary(t: dict) -> list[Html]:
    """Plain words for the table's jargon."""
    return [
        el("h2", t["glossary_title"]),
        el(
            "dl",
            *(part for term, meaning in t["glossary"] for part in (el("dt", term), el("dd", meaning))),
            class_="gate-glossary",
            id="glossary",
        ),
    ]


async def notice(request: Request) -> Response:
    """GET /_gate/notice (``?format=json`` for the same rows as data)."""
    v = _page_view(request)
    if isinstance(v, Response):
        return v
    rows = notice_rows(v.registry, v.consent, v.carried, v.lang)
    if request.query_params.get("format") == "json":
        return JSONResponse(
            {
                "mode": v.site.mode,
                "policy_version": v.registry.version,
                "lang": v.lang,
                "decided": v.consent.decided,
                "rows": rows,
            },
            headers=HEADERS,
        )
    t = TEXT[v.lang]
    prefs = el("a", t["prefs_title"], href=preferences_url(v.lang, "/_gate/notice"))
    always = [
        el("p", (p.ja + t["colon"] + p.summary_ja) if v.lang == "ja" else (p.en + t["colon"] + p.summary_en))
        for p in v.registry.purposes.values()
        if not p.refusable
    ]
    table = el(
        "table",
        el("thead", el("tr", *(el("th", c, scope="col") for c in t["columns"]))),
        el("tbody", *(_row(r, t) for r in rows)),
    )
    body = [
        el("p", t["intro"]),
        el(
            "p",
            t["opt_out_notice" if v.site.mode == "opt-out" else "opt_in_notice"],
            " ",
            prefs,
            t["end"],
            class_="gate-note",
        ),
        table,
        *always,
        *_forms(v, t, rows),
        *_abroad(v, t),
        *_glossary(t),
        _links(
            v, t, el("a", t["json"], href="/_gate/notice?format=json" + ("&gate_lang=en" if v.lang == "en" else ""))
        ),
    ]
    return HTMLResponse(_page(v, v.lang, t["notice_title"], *body), headers=HEADERS)


# -- errors --------------------------------------------------------------------------------------
def error_page(status: int, lang: str = "ja") -> str:
    """A short page for 502 / 504 / 421, in Japanese and English both (``lang`` comes first)."""
    lang = lang if lang in ("ja", "en") else "ja"
    texts = ERRORS.get(status, ERRORS[0])
    order = ("ja", "en") if lang == "ja" else ("en", "ja")
    body = [el("p", texts[k], lang=k) for k in order]
    return _page(None, lang, f"{status} {texts['title']}", *body)
