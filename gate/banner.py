"""Renders the banner, the settings link and the footer link: escaped by default, data-gate on everything.

The banner is one plain ``<form method=post action=/_gate/consent>``, so it works with JavaScript off;
gate.js only makes it post in place. Core module: no starlette, no httpx.

Every URL injected into a page is absolute, on ``origin`` (gate's public ``scheme://host``): a page's
``<base href>`` would carry a relative one elsewhere, the stylesheet and scripts fetched from, and
the form posted to, whatever host it names. Forms and links say ``target=_self`` for the same
reason (``<base target=_blank>``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from html import escape, unescape
from pathlib import Path
from urllib.parse import urlencode, urljoin

from .consent import Consent, undecided
from .vendors import Registry

LANGS = ("ja", "en")
STATIC_DIR = Path(__file__).resolve().parent / "static"


def static_url(name: str) -> str:
    # The content hash in the query lets /_gate/static/ be cached for a year and still change on upgrade.
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    return f"/_gate/static/{name}?v={digest}"


CSS_URL = static_url("gate.css")
JS_URL = static_url("gate.js")

TEXT = {
    "ja": {
        "title": "Cookieと外部送信について",
        "data": "当サイトは、Cookie情報、ユーザー識別子、IPアドレス、広告識別子、{location}Web閲覧履歴を取り扱い、"
        "{mode}次の事業者へ送信します",
        "location": "位置情報、",
        "purposes": "利用目的：",
        "opt-in": "あなたが同意した目的に限り、",
        "opt-out": "あなたが拒否しない限り、",
        "gpc": "ブラウザのGPC（グローバル・プライバシー・コントロール）の信号に従い、"
        "広告と提案の目的は最初から拒否にしています。",
        "accept": "すべて同意",
        "reject": "すべて拒否",
        "settings": "設定",
        "save": "選択を保存",
        "choose": "目的ごとに選ぶ",
        "always": "（常に有効）",
        "notice": "外部送信について",
        "policy": "プライバシーポリシー",
        "cookie_settings": "Cookie設定",
        "sep": "、",
        "end": "",
        "colon": "：",
        "new": "前回の選択のあと、次の送信先または目的が加わりました。これらには、あなたが選ぶまで送信しません：",
        "new_opt_out": "前回の選択のあと、次の送信先または目的が加わりました：",
        "pd_legend": "応募フォームの個人情報の提供（任意・送信先ごと）",
        "pd_help": "応募フォームのあるページでは、入力内容を読み取れるタグを止めています。チェックした送信先にだけ、"
        "フォームに入力した氏名・メールアドレス・電話番号が届くことがあります。「すべて同意」には含まれません。",
        "pd_line": "{recipient}（{country}）への提供に同意する",
    },
    "en": {
        "title": "Cookies and data sent to other companies",
        "data": "This site handles cookie data, user identifiers, IP addresses, advertising identifiers, {location}"
        "browsing history and, {mode}, sends them to",
        "location": "location data, ",
        "purposes": "What for:",
        "opt-in": "only for the purposes you accept",
        "opt-out": "unless you refuse",
        "gpc": "Your browser's Global Privacy Control signal was honoured: advertising and suggestions are "
        "refused by default.",
        "accept": "Accept all",
        "reject": "Reject all",
        "settings": "Settings",
        "save": "Save my choices",
        "choose": "Choose by purpose",
        "always": " (always on)",
        "notice": "External transmission",
        "policy": "Privacy policy",
        "cookie_settings": "Cookie settings",
        "sep": ", ",
        "end": ".",
        "colon": ": ",
        "new": "Since your last choice, these recipients or purposes were added. Nothing is sent to them "
        "until you choose:",
        "new_opt_out": "Since your last choice, these recipients or purposes were added:",
        "pd_legend": "Personal data from application forms (optional, per recipient)",
        "pd_help": "On pages with an application form, tags that can read what you type are stopped. Only the "
        "recipients you tick may receive the name, e-mail address and phone number you enter. "
        "\u201cAccept all\u201d does not include this.",
        "pd_line": "I agree to {recipient} ({country}) receiving it",
    },
}


class Html(str):
    """Markup that is already safe. Any other str handed to el() is escaped."""


def el(tag: str, *children: str, **attrs: str | bool | None) -> Html:
    """``<tag data-gate …>children</tag>``. ``class_`` → class, ``aria_label`` → aria-label."""
    parts = [tag, "data-gate"]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{escape(str(value))}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in ("input", "link", "meta", "br"):
        return Html(opening)
    return Html(opening + join("", children) + f"</{tag}>")


def join(sep: str, items: Iterable[str]) -> Html:
    return Html(sep.join(c if isinstance(c, Html) else escape(c) for c in items))


def choose_lang(gate_lang: str | None, accept_language: str | None) -> str:
    """``?gate_lang=`` when it names ja or en, else the Accept-Language preference; Japanese by default."""
    if gate_lang in LANGS:
        return gate_lang
    return _preferred_lang((accept_language or "")[:512])


@functools.lru_cache(maxsize=256)  # read for every page; browsers send a handful of distinct values
def _preferred_lang(accept_language: str) -> str:
    best, best_q = "ja", 0.0
    for part in accept_language.split(","):
        tag, _, params = part.partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        key, _, value = params.strip().partition("=")
        if key.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = primary, q
    return best


def preferences_url(lang: str, next_path: str, origin: str = "") -> str:
    query = {"next": next_path} | ({"gate_lang": lang} if lang != "ja" else {})
    return origin + "/_gate/preferences?" + urlencode(query)


def notice_url(lang: str, origin: str = "") -> str:
    return origin + "/_gate/notice" + ("?gate_lang=" + lang if lang != "ja" else "")


def site_url(origin: str, url: str) -> str:
    """``url`` (a path on the site, or absolute) made absolute on ``origin``, as a browser without a
    ``<base>`` would read it on that site."""
    return urljoin(origin + "/", url)


def services_by_vendor(registry: Registry, carried: frozenset[str], purpose: str, lang: str) -> dict[str, list[str]]:
    """{vendor id: [service names]} of the carried tags that serve ``purpose``, in registry order."""
    found: dict[str, list[str]] = {}
    for tag in registry.tags.values():
        if tag.id in carried and purpose in tag.purposes:
            found.setdefault(tag.vendor, []).append(tag.service_ja if lang == "ja" else tag.service_en)
    return found


def _purpose_rows(registry: Registry, carried: frozenset[str], lang: str, consent: Consent) -> list[Html]:
    """One switch per refusable purpose that a carried tag uses, with its summary, recipients and
    services. In opt-out mode a switch is ticked when that purpose is being sent now (as on the
    preferences page); in opt-in mode nothing is ticked before the visitor chooses."""
    t, rows = TEXT[lang], []
    for p in registry.purposes.values():
        name = p.ja if lang == "ja" else p.en
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
            continue
        by_vendor = services_by_vendor(registry, carried, p.id, lang)
        if not by_vendor:
            continue  # nothing on this site uses it: a switch for it would be noise
        who = join(
            "", (el("li", registry.vendors[v].recipient + t["colon"] + t["sep"].join(s)) for v, s in by_vendor.items())
        )
        sent = consent.opt_out_mode and consent.allows_purpose(p.id, registry.refusable)
        rows.append(
            el(
                "label",
                el(
                    "input",
                    type="checkbox",
                    name="purposes",
                    value=p.id,
                    checked=sent,
                    aria_describedby=f"gate-m-{p.id} gate-d-{p.id}",
                ),
                " ",
                el("b", name),
                class_="gate-sw",
            )
        )
        rows.append(el("p", p.summary_ja if lang == "ja" else p.summary_en, id=f"gate-m-{p.id}", class_="gate-who"))
        rows.append(el("ul", who, id=f"gate-d-{p.id}", class_="gate-who"))
    return rows


def personal_data_rows(
    registry: Registry, carried: frozenset[str], lang: str, given: frozenset[str] = frozenset()
) -> list[Html]:
    """The settings layer's own line per recipient whose carried tags read forms: a consent to
    personal data (APPI art. 27/31), never part of "accept all". Empty when no carried tag reads forms."""
    t, rows = TEXT[lang], []
    for vendor in registry.vendors.values():
        tags = [registry.tags[tid] for tid in vendor.tags if tid in carried and registry.tags[tid].reads_forms]
        if not tags:
            continue
        country = vendor.country_ja if lang == "ja" else vendor.country_en
        line = t["pd_line"].format(recipient=vendor.recipient, country=country or "?")
        services = t["sep"].join(tag.service_ja if lang == "ja" else tag.service_en for tag in tags)
        rows.append(
            el(
                "label",
                el(
                    "input",
                    type="checkbox",
                    name="personal_data",
                    value=vendor.id,
                    checked=vendor.id in given,
                    aria_describedby=f"gate-pd-{vendor.id}",
                ),
                " ",
                el("b", line),
                class_="gate-sw",
            )
        )
        rows.append(el("p", services, id=f"gate-pd-{vendor.id}", class_="gate-who"))
    if rows:
        rows[:0] = [el("legend", t["pd_legend"]), el("p", t["pd_help"], class_="gate-who")]
    return rows


def render_banner(
    registry: Registry,
    consent: Consent,
    *,
    lang: str,
    next_path: str,
    policy_url: str,
    carried: frozenset[str],
    origin: str,
    nonce: str | None = None,
) -> str:
    """The consent dialog: first layer with three equal buttons, settings layer, one plain form.

    ``origin``: gate's public ``scheme://host``, which every URL in it is made absolute on."""
    lang = lang if lang in LANGS else "ja"
    t = TEXT[lang]
    who = t["sep"].join(recipients(registry, carried))
    who += "" if who.endswith(t["end"]) else t["end"]  # "Meta Platforms, Inc." needs no second full stop
    location = t["location"] if any(registry.tags[tid].location for tid in carried) else ""
    first = [
        el("h2", t["title"], id="gate-title"),
        el(
            "p",
            t["data"].format(mode=t["opt-out" if consent.opt_out_mode else "opt-in"], location=location),
            t["colon"],
            el("b", who),
        ),
        el("p", t["purposes"], class_="gate-purposes-intro"),
        # One line per purpose; each one's summary is in the settings layer (and the notice).
        el(
            "ul",
            *(
                el("li", p.ja if lang == "ja" else p.en)
                for p in registry.purposes.values()
                if p.refusable and services_by_vendor(registry, carried, p.id, lang)
            ),
            class_="gate-purposes",
        ),
    ]
    if consent.renewing and (new := _new_since(registry, consent, carried, lang)):
        first.append(el("p", t["new_opt_out" if consent.opt_out_mode else "new"], " ", el("b", new), class_="gate-new"))
    if consent.gpc and consent.covered is None:
        first.append(el("p", t["gpc"], class_="gate-gpc"))
    first.append(
        el(
            "p",
            el("a", t["notice"], href=notice_url(lang, origin), target="_self"),
            " ",
            el("a", t["policy"], href=site_url(origin, policy_url), target="_self"),
            class_="gate-links",
        )
    )
    buttons = el(
        "div",
        el("button", t["accept"], name="choice", value="accept_all", class_="gate-btn"),
        el("button", t["reject"], name="choice", value="reject_all", class_="gate-btn"),
        # Without JavaScript this button opens the full preferences page; gate.js turns it into a toggle.
        el(
            "button",
            t["settings"],
            name="choice",
            value="settings",
            class_="gate-btn",
            formaction=origin + "/_gate/preferences",
            formmethod="get",
            id="gate-settings",
        ),
        class_="gate-row",
    )
    panel = el(
        "div",
        el("fieldset", el("legend", t["choose"]), *_purpose_rows(registry, carried, lang, consent)),
        el("fieldset", *pd_rows, class_="gate-pd") if (pd_rows := personal_data_rows(registry, carried, lang)) else "",
        el("div", el("button", t["save"], name="choice", value="custom", class_="gate-btn"), class_="gate-row"),
        id="gate-panel",
        hidden=True,
    )
    form = el(
        "form",
        el("input", type="hidden", name="next", value=next_path),
        el("input", type="hidden", name="lang", value=lang),
        *first,
        buttons,
        panel,
        method="post",
        action=origin + "/_gate/consent",
        target="_self",
        class_="gate-in",
    )
    return join(
        "",
        [
            el("link", rel="stylesheet", href=origin + CSS_URL),
            el(
                "div",
                form,
                role="dialog",
                aria_labelledby="gate-title",
                id="gate-banner",
                class_="gate gate-sheet",
                lang=lang,
            ),
            el("script", src=origin + JS_URL, defer=True, nonce=nonce),
        ],
    )


def _new_since(registry: Registry, consent: Consent, carried: frozenset[str], lang: str) -> str:
    """「Criteo SA（Criteo OneTag）、…」: the carried tags an earlier decision did not cover."""
    t = TEXT[lang]
    new = [registry.tags[tid] for tid in registry.tags if tid in carried and tid not in (consent.covered or ())]
    items = [
        f"{registry.vendors[tag.vendor].recipient}（{tag.service_ja}）"
        if lang == "ja"
        else f"{registry.vendors[tag.vendor].recipient} ({tag.service_en})"
        for tag in new
    ]
    return t["sep"].join(items)


def recipients(registry: Registry, carried: frozenset[str]) -> list[str]:
    """The recipients the banner lists, in registry order."""
    return [v.recipient for v in registry.vendors.values() if any(tag in carried for tag in v.tags)]


def text_of(html: str) -> str:
    """The words a person reads in ``html``: tags dropped, entities decoded, white space collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split())


def render_footer_link(*, lang: str, origin: str) -> str:
    """「外部送信について」, on every page: the notice one click away (電気通信事業法 27条の12)."""
    lang = lang if lang in LANGS else "ja"
    return el(
        "p", el("a", TEXT[lang]["notice"], href=notice_url(lang, origin), target="_self"), class_="gate-foot", lang=lang
    )


def render_dock(
    *,
    lang: str,
    next_path: str,
    origin: str,
    notice_link: bool = True,
    corner: str = "bottom-left",
    offset: int = 8,
    nonce: str | None = None,
) -> str:
    """After a decision: the settings link (and the notice link unless the site's own footer has it),
    floating at ``corner``, or moved by gate.js into the site's own ``[data-gate-settings]`` element."""
    lang = lang if lang in LANGS else "ja"
    settings = el(
        "a",
        TEXT[lang]["cookie_settings"],
        href=preferences_url(lang, next_path, origin),
        target="_self",
        class_="gate-set",
    )
    dock = el(
        "div",
        settings,
        render_footer_link(lang=lang, origin=origin) if notice_link else "",
        class_=f"gate-dock gate-at-{corner}",
        lang=lang,
        data_gate_offset=None if offset == 8 else str(offset),
    )
    return join(
        "",
        [
            el("link", rel="stylesheet", href=origin + CSS_URL),
            dock,
            el("script", src=origin + JS_URL, defer=True, nonce=nonce),
        ],
    )


def render_root(inner: str) -> str:
    """Everything gate adds to a page's body, in one container out of the page's flow (a flex or grid
    body gains no item): its parts are fixed to the window or hidden."""
    return _ROOT_OPEN + inner + "</div>"


_ROOT_OPEN = el("div", id="gate-root", class_="gate-root").removesuffix("</div>")


def payload_bytes(registry: Registry, lang: str = "ja") -> dict[str, tuple[int, int]]:
    """(raw, gzip) bytes a first visit costs: the banner HTML (every tag a site carries by default),
    gate.css and gate.js."""
    html = render_banner(
        registry,
        undecided(registry),
        lang=lang,
        next_path="/",
        policy_url="/privacy",
        carried=registry.carried(None, None),
        origin="https://www.example.jp",
    )
    parts = {
        "banner": html.encode(),
        "css": (STATIC_DIR / "gate.css").read_bytes(),
        "js": (STATIC_DIR / "gate.js").read_bytes(),
    }
    sizes = {k: (len(v), len(gzip.compress(v, 9))) for k, v in parts.items()}
    sizes["total"] = (sum(r for r, _ in sizes.values()), sum(g for _, g in sizes.values()))
    return sizes


# Per-page rendering, cached. The banner and the dock depend on a handful of things that repeat from
# page to page (the site's registry, what it carries, the language, the consent facts the banner reads,
# gate's origin) and on two that change with every page: the path (``next``) and the CSP nonce. The
# cache keeps the markup rendered with a random placeholder for each of those two, cut at the
# placeholders, and fills the cuts with what render_banner/render_dock would have written there
# (the same escape(), the same urlencode()). Bounded: the oldest entry goes when it is full.
_HOLE = "gatehole" + secrets.token_hex(12)  # letters and digits only: escape() and urlencode() keep it as is
_NEXT, _NONCE = _HOLE + "n", _HOLE + "c"
_CUT = re.compile(f"({_NEXT}|{_NONCE})")
CACHE_SIZE = 256
_cache: dict[tuple[object, ...], tuple[object, list[str]]] = {}


def _template(
    key: tuple[object, ...], keep: object, nonces: int, render: Callable[[str, str], str]
) -> list[str] | None:
    """The cut markup for ``key`` (rendering it once); ``keep`` is held so its id() in the key stays
    its own. None (do not cache) unless the path's hole is there once and the nonce's ``nonces`` times."""
    hit = _cache.get(key)
    if hit is not None and hit[0] is keep:
        return hit[1]
    parts = _CUT.split(render(_NEXT, _NONCE))
    if parts.count(_NEXT) != 1 or parts.count(_NONCE) != nonces:
        return None
    if len(_cache) >= CACHE_SIZE:
        del _cache[next(iter(_cache))]
    _cache[key] = (keep, parts)
    return parts


def _fill(parts: list[str], next_value: str, nonce: str | None) -> str:
    out = []
    for part in parts:
        if part == _NEXT:
            out.append(next_value)
        elif part == _NONCE:
            out.append(escape(str(nonce)))
        else:
            out.append(part)
    return "".join(out)


def cached_banner(
    registry: Registry,
    consent: Consent,
    *,
    lang: str,
    next_path: str,
    policy_url: str,
    carried: frozenset[str],
    origin: str,
    nonce: str | None = None,
) -> str:
    """render_banner's very bytes, from the cache when the same banner was rendered before."""
    # What render_banner reads of the consent: its mode, GPC, the earlier decision's coverage, and
    # (opt-out mode) which purposes are being sent now.
    sent = tuple(consent.allows_purpose(p, registry.refusable) for p in registry.purposes)
    facts = (consent.decided, consent.opt_out_mode, consent.gpc, consent.covered, sent)
    key = ("banner", id(registry), facts, lang, policy_url, carried, origin, nonce is None)

    def render(next_hole: str, nonce_hole: str) -> str:
        return render_banner(
            registry,
            consent,
            lang=lang,
            next_path=next_hole,
            policy_url=policy_url,
            carried=carried,
            origin=origin,
            nonce=None if nonce is None else nonce_hole,
        )

    parts = _template(key, registry, nonce is not None, render)
    if parts is None:  # the holes did not come out where expected: render this page's banner directly
        return render(next_path, nonce or "")
    return _fill(parts, escape(next_path), nonce)


def cached_dock(
    *,
    lang: str,
    next_path: str,
    origin: str,
    notice_link: bool = True,
    corner: str = "bottom-left",
    offset: int = 8,
    nonce: str | None = None,
) -> str:
    """render_dock's very bytes, from the cache when the same dock was rendered before."""
    key = ("dock", lang, origin, notice_link, corner, offset, nonce is None)

    def render(next_hole: str, nonce_hole: str) -> str:
        return render_dock(
            lang=lang,
            next_path=next_hole,
            origin=origin,
            notice_link=notice_link,
            corner=corner,
            offset=offset,
            nonce=None if nonce is None else nonce_hole,
        )

    parts = _template(key, None, nonce is not None, render)
    if parts is None:
        return render(next_path, nonce or "")
    # preferences_url: urlencode({"next": …}) inside the escaped href.
    return _fill(parts, escape(urlencode({"next": next_path})[len("next=") :]), nonce)
