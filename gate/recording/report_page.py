"""The report as one HTML page, for a marketing reader: Japanese first, English by Accept-Language or
``?gate_lang=en``. Charts are inline SVG drawn here (no script, no external style: the page is readable
offline, in print and on a phone), each with its numbers in a table beside it."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from ..vendors import Registry

CHOICE_COLORS = {"accept_all": "#1b7f3b", "custom": "#2f6db5", "reject_all": "#8a8f98", "withdraw": "#c4661f"}
OUTCOME_COLORS = {"served": "#2f6db5", "stripped": "#8a8f98", "fired": "#1b7f3b"}

TEXT: dict[str, dict[str, str]] = {
    "ja": {
        "title": "gate レポート",
        "site": "サイト",
        "from": "開始日",
        "to": "終了日",
        "period": "期間",
        "show": "表示",
        "default_site": "（既定のサイト）",
        "utc": "日付はUTC",
        "download": "ダウンロード",
        "pages": "書き換えたページ",
        "banner_shown": "バナー表示",
        "gpc_default": "GPCで既定拒否",
        "beacons": "計測できた閲覧",
        "decisions": "同意の操作",
        "field_leaks": "漏れ",
        "undeclared_hosts": "未申告の送信先",
        "uncertain_strips": "判断保留の除去",
        "h_decisions": "同意の推移（日別の操作）",
        "h_purposes": "目的ごとの同意率",
        "h_tags": "タグ別：配信・除去・発火",
        "h_findings": "要確認の項目",
        "h_pages": "よく表示されたページ",
        "h_howto": "このレポートの読み方",
        "accept_all": "すべて同意",
        "custom": "選んで同意",
        "reject_all": "すべて拒否",
        "withdraw": "撤回",
        "served": "配信",
        "stripped": "除去",
        "fired": "発火",
        "attempted": "試行",
        "fire_rate": "発火率",
        "tag": "タグ",
        "count": "件数",
        "day": "日付",
        "total": "合計",
        "by_method": "操作した場所",
        "accepted": "同意",
        "refused": "拒否",
        "rate": "同意率",
        "reasons": "除去の理由",
        "path": "ページ",
        "examples": "例",
        "rejected": "数えなかった送信（偽造・重複・過多）",
        "leak": "漏れ（拒否されたのに発火）",
        "undeclared_host": "未申告の送信先",
        "unattributed_host": "タグを特定できない送信先（どのタグにも数えない）",
        "uncertain": "判断保留の除去",
        "personal_data": "個人データ送信の疑い",
        "none": "ありません",
        "purpose_refused": "目的を拒否：",
        "vendor_refused": "事業者を拒否：",
        "no_data": "この期間のデータはありません",
        "howto": (
            "<dt>配信</dt><dd>同意があり、ページに残して配信した回数です。</dd>"
            "<dt>除去</dt><dd>同意がないため、gate がページから取り除いた回数です。"
            "理由は拒否された目的または事業者です。</dd>"
            "<dt>発火</dt><dd>訪問者のブラウザーが、実際にそのタグの送信先と通信した回数です（ページ内の計測で確認。"
            "JavaScript を切った閲覧やブロッカーのある閲覧は数えられません）。発火率＝発火÷配信。</dd>"
            "<dt>試行</dt><dd>ページの実行中に読み込もうとして、"
            "ガードに止められたか CSP 違反として報告された回数です。</dd>"
            "<dt>漏れ</dt><dd>訪問者が拒否していたのに発火したタグです。タグマネージャーの設定を確認してください。</dd>"
            "<dt>未申告の送信先</dt><dd>vendors.toml にない第三者の送信先です。"
            "外部送信の公表事項に加える必要があります。</dd>"
            "<dt>判断保留の除去</dt><dd>内容を確実には読めなかったため、安全側で取り除いた要素です。</dd>"
            "<dt>同意率</dt><dd>同意の操作のうち、その目的に同意した割合です。撤回は含みません。</dd>"
        ),
    },
    "en": {
        "title": "gate report",
        "site": "Site",
        "from": "From",
        "to": "To",
        "period": "Period",
        "show": "Show",
        "default_site": "(default site)",
        "utc": "days in UTC",
        "download": "Download",
        "pages": "Pages rewritten",
        "banner_shown": "Banner shown",
        "gpc_default": "GPC default",
        "beacons": "Views measured",
        "decisions": "Consent decisions",
        "field_leaks": "Field leaks",
        "undeclared_hosts": "Undeclared hosts",
        "uncertain_strips": "Uncertain strips",
        "h_decisions": "Consent decisions per day",
        "h_purposes": "Consent rate per purpose",
        "h_tags": "Tags: served, stripped, fired",
        "h_findings": "Findings",
        "h_pages": "Most shown pages",
        "h_howto": "How to read this report",
        "accept_all": "Accept all",
        "custom": "Custom",
        "reject_all": "Reject all",
        "withdraw": "Withdraw",
        "served": "Served",
        "stripped": "Stripped",
        "fired": "Fired",
        "attempted": "Attempted",
        "fire_rate": "Fire rate",
        "tag": "Tag",
        "count": "Count",
        "day": "Day",
        "total": "Total",
        "by_method": "Where",
        "accepted": "Accepted",
        "refused": "Refused",
        "rate": "Rate",
        "reasons": "Why stripped",
        "path": "Page",
        "examples": "Examples",
        "rejected": "Submissions not counted (forged, replayed, too many)",
        "leak": "Field leak (fired while refused)",
        "undeclared_host": "Undeclared host",
        "unattributed_host": "Vendor host no single tag explains (counted for none)",
        "uncertain": "Uncertain strip",
        "personal_data": "Possible personal data",
        "none": "None",
        "purpose_refused": "purpose refused: ",
        "vendor_refused": "vendor refused: ",
        "no_data": "No data for these days",
        "howto": (
            "<dt>Served</dt><dd>Times gate let the tag through on a page, because the visitor had consented.</dd>"
            "<dt>Stripped</dt><dd>Times gate removed it from a page for lack of consent; the reason is the refused "
            "purpose or vendor.</dd>"
            "<dt>Fired</dt><dd>Times a visitor's browser actually contacted the tag's hosts (measured in the page; "
            "views with JavaScript off or a blocker are not counted). Fire rate = fired ÷ served.</dd>"
            "<dt>Attempted</dt><dd>Loads tried while the page ran and stopped by the guard or reported by CSP.</dd>"
            "<dt>Field leak</dt><dd>A tag that fired although the visitor had refused it: check the tag manager.</dd>"
            "<dt>Undeclared host</dt><dd>A third-party host vendors.toml does not name: the external-transmission "
            "notice must list it.</dd>"
            "<dt>Uncertain strip</dt><dd>An element gate could not read for sure, so it removed it to be safe.</dd>"
            "<dt>Consent rate</dt><dd>Of the decisions, the share that accepted the purpose "
            "(withdrawals excluded).</dd>"
        ),
    },
}

STYLE = """
body{font:16px/1.6 system-ui,"Hiragino Sans","Noto Sans CJK JP",Meiryo,sans-serif;
margin:0;color:#1d1f23;background:#fff}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.5rem;margin:.2em 0}h2{font-size:1.2rem;margin:1.6em 0 .4em;border-bottom:2px solid #e3e5e8}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px;margin:12px 0}
.card{border:1px solid #d5d8dc;border-radius:6px;padding:8px}.card b{display:block;font-size:1.4rem}
.warn b{color:#b3261e}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #e3e5e8;padding:4px 6px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg{width:100%;min-width:540px;height:auto;display:block}figure{margin:0;overflow-x:auto}
table.wide{min-width:640px}svg text{font:12px system-ui,sans-serif;fill:#1d1f23}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
form{display:flex;flex-wrap:wrap;gap:8px;align-items:end}label{display:flex;flex-direction:column;font-size:.85rem}
input,button{font:inherit;padding:4px 6px}dt{font-weight:bold;margin-top:.6em}dd{margin:0 0 0 1em}
code{font-size:.9em}.muted{color:#5b6068}
@media print{form,.noprint{display:none}main{max-width:none}h2{break-after:avoid}figure,table{break-inside:avoid}}
"""


def render(data: dict[str, Any], lang: str, registry: Registry) -> str:
    t = TEXT[lang if lang in TEXT else "ja"]
    site_name = t["default_site"] if data["site"] == "*" else data["site"]
    parts = [
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(t['title'])}: {escape(site_name)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(t['title'])}: {escape(site_name)}</h1>",
        f"<p>{escape(t['period'])}: {data['from']} – {data['to']} <span class=muted>({escape(t['utc'])})</span></p>",
        _form(data, lang, t),
        _cards(data, t),
        f"<h2>{escape(t['h_decisions'])}</h2>",
        _decisions(data, t),
        f"<h2>{escape(t['h_purposes'])}</h2>",
        _purposes(data, t, registry, lang),
        f"<h2>{escape(t['h_tags'])}</h2>",
        _tags(data, t, registry, lang),
        f"<h2>{escape(t['h_findings'])}</h2>",
        _findings(data, t),
        f"<h2>{escape(t['h_pages'])}</h2>",
        _table([t["path"], t["pages"]], [[escape(p["path"]), _n(p["pages"])] for p in data["pages"]], t, numeric={1}),
        f"<h2>{escape(t['h_howto'])}</h2><dl>{t['howto']}</dl>",
        "</main></body></html>",
    ]
    return "".join(parts)


def _form(data: dict[str, Any], lang: str, t: dict[str, str]) -> str:
    query = {"site": data["site"], "since": data["from"], "until": data["to"]}
    sites = "".join(
        f'<option value="{escape(s)}"{" selected" if s == data["site"] else ""}>'
        f"{escape(t['default_site'] if s == '*' else s)}</option>"
        for s in data.get("sites", [data["site"]])
    )
    lang_field = f'<input type="hidden" name="gate_lang" value="{lang}">' if lang != "ja" else ""
    downloads = " ".join(
        f'<a href="/_gate/report.{kind}?{escape(urlencode(query))}">{kind.upper()}</a>' for kind in ("csv", "json")
    )
    return (
        f'<form method="get" action="/_gate/report">{lang_field}'
        f'<label>{escape(t["site"])}<select name="site">{sites}</select></label>'
        f'<label>{escape(t["from"])}<input type="date" name="since" value="{data["from"]}"></label>'
        f'<label>{escape(t["to"])}<input type="date" name="until" value="{data["to"]}"></label>'
        f"<button>{escape(t['show'])}</button></form>"
        f'<p class="noprint">{escape(t["download"])}: {downloads}</p>'
    )


def _cards(data: dict[str, Any], t: dict[str, str]) -> str:
    totals = data["totals"]
    cards = []
    for key in (
        "pages",
        "banner_shown",
        "gpc_default",
        "beacons",
        "decisions",
        "field_leaks",
        "undeclared_hosts",
        "uncertain_strips",
        "rejected",
    ):
        warn = " warn" if key in ("field_leaks", "undeclared_hosts") and totals[key] else ""
        cards.append(f'<div class="card{warn}">{escape(t[key])}<b>{_n(totals[key])}</b></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _legend(items: list[tuple[str, str]]) -> str:
    return (
        '<p class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c in items)
        + "</p>"
    )


def _decisions(data: dict[str, Any], t: dict[str, str]) -> str:
    days = data["days"]
    totals = [sum(d["decisions"].get(c, 0) for c in CHOICE_COLORS) for d in days]
    if not any(totals):
        return f"<p>{escape(t['no_data'])}</p>"
    width, height, left, bottom = 720, 220, 44, 24
    tick = _tick(max(totals))
    top = tick * -(-max(totals) // tick)
    step = (width - left - 8) / len(days)
    svg = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(t["h_decisions"])}">']
    for value in range(0, top + 1, tick):
        y = height - bottom - (height - bottom - 8) * value / top
        svg.append(
            f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e5e8"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_n(value)}</text>'
        )
    for i, d in enumerate(days):
        y = height - bottom
        for choice, color in CHOICE_COLORS.items():
            n = d["decisions"].get(choice, 0)
            if not n:
                continue
            h = (height - bottom - 8) * n / top
            y -= h
            svg.append(
                f'<rect x="{left + i * step + step * 0.1:.1f}" y="{y:.1f}" width="{max(step * 0.8, 0.5):.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{d["day"]} {escape(t[choice])}: {n}</title></rect>'
            )
    for i in sorted({0, len(days) // 2, len(days) - 1}):
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        svg.append(
            f'<text x="{left + (i + 0.5) * step:.1f}" y="{height - 6}" text-anchor="{anchor}">{days[i]["day"]}</text>'
        )
    svg.append("</svg>")
    rows = [
        [
            c_label,
            _n(data["decisions"][c]["total"]),
            escape(", ".join(f"{m} {n}" for m, n in data["decisions"][c]["by_method"].items())),
        ]
        for c, c_label in ((c, t[c]) for c in CHOICE_COLORS)
    ]
    return (
        "<figure>"
        + _legend([(t[c], col) for c, col in CHOICE_COLORS.items()])
        + "".join(svg)
        + "</figure>"
        + _table(["", t["total"], t["by_method"]], [[escape(r[0]), r[1], r[2]] for r in rows], t, numeric={1})
    )


def _purposes(data: dict[str, Any], t: dict[str, str], registry: Registry, lang: str) -> str:
    rows = data["purposes"]
    if not any(p["accepted"] + p["refused"] for p in rows):
        return f"<p>{escape(t['no_data'])}</p>"
    width, row_h, left = 720, 28, 220
    svg = [f'<svg viewBox="0 0 {width} {row_h * len(rows) + 4}" role="img" aria-label="{escape(t["h_purposes"])}">']
    for i, p in enumerate(rows):
        y, rate = i * row_h + 4, p["rate"] or 0.0
        bar = (width - left - 80) * rate
        svg.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(_purpose_name(registry, p['purpose'], lang))}</text>"
            f'<rect x="{left}" y="{y + 4}" width="{width - left - 80}" height="16" fill="#e3e5e8"/>'
            f'<rect x="{left}" y="{y + 4}" width="{bar:.1f}" height="16" fill="#1b7f3b">'
            f"<title>{p['accepted']} / {p['accepted'] + p['refused']}</title></rect>"
            f'<text x="{width - 74}" y="{y + 16}">{_pct(p["rate"])}</text>'
        )
    svg.append("</svg>")
    table = _table(
        [t["h_purposes"], t["accepted"], t["refused"], t["rate"]],
        [
            [escape(_purpose_name(registry, p["purpose"], lang)), _n(p["accepted"]), _n(p["refused"]), _pct(p["rate"])]
            for p in rows
        ],
        t,
        numeric={1, 2, 3},
    )
    return "<figure>" + "".join(svg) + "</figure>" + table


def _tags(data: dict[str, Any], t: dict[str, str], registry: Registry, lang: str) -> str:
    rows = data["tags"]
    if not rows:
        return f"<p>{escape(t['no_data'])}</p>"
    width, row_h, left = 720, 40, 170
    top = _nice(max([max(r["served"], r["stripped"], r["fired"]) for r in rows] + [1]))
    svg = [f'<svg viewBox="0 0 {width} {row_h * len(rows) + 4}" role="img" aria-label="{escape(t["h_tags"])}">']
    for i, r in enumerate(rows):
        y = i * row_h + 4
        # The tag id: short and exact (service names are in the table below, and in <title> here).
        svg.append(
            f'<text x="{left - 8}" y="{y + 20}" text-anchor="end">{escape(r["tag"])}'
            f"<title>{escape(_service(r, lang))}</title></text>"
        )
        for j, (outcome, color) in enumerate(OUTCOME_COLORS.items()):
            w = (width - left - 60) * r[outcome] / top
            svg.append(
                f'<rect x="{left}" y="{y + 4 + j * 11}" width="{w:.1f}" height="10" fill="{color}">'
                f"<title>{escape(t[outcome])}: {r[outcome]}</title></rect>"
                f'<text x="{left + w + 4:.1f}" y="{y + 13 + j * 11}" style="font-size:10px">{_n(r[outcome])}</text>'
            )
    svg.append("</svg>")
    table = _table(
        [
            t["tag"],
            t["served"],
            t["stripped"],
            t["fired"],
            t["attempted"],
            t["fire_rate"],
            t["field_leaks"],
            t["reasons"],
        ],
        [
            [
                f"{escape(_service(r, lang))}<br><code>{escape(r['tag'])}</code>",
                _n(r["served"]),
                _n(r["stripped"]),
                _n(r["fired"]),
                _n(r["attempted"]),
                _pct(r["fire_rate"]),
                _n(r["field_leaks"]),
                escape("; ".join(f"{_reason(k, t, registry, lang)} {n}" for k, n in r["stripped_by"].items())),
            ]
            for r in rows
        ],
        t,
        numeric={1, 2, 3, 4, 5, 6},
        wide=True,
    )
    return "<figure>" + _legend([(t[o], c) for o, c in OUTCOME_COLORS.items()]) + "".join(svg) + "</figure>" + table


def _findings(data: dict[str, Any], t: dict[str, str]) -> str:
    if not data["findings"]:
        return f"<p>{escape(t['none'])}</p>"
    return _table(
        [t["h_findings"], "", t["count"], t["examples"]],
        [
            [
                escape(t.get(f["kind"], f["kind"])),
                f"<code>{escape(f['subject'])}</code>" if f["subject"] else "",
                _n(f["count"]),
                "<br>".join(f"{escape(e['path'])} <span class=muted>{e['day']}</span>" for e in f["examples"]),
            ]
            for f in data["findings"]
        ],
        t,
        numeric={2},
    )


def _table(
    headers: list[str],
    rows: list[list[str]],
    t: dict[str, str],
    numeric: set[int] = frozenset(),  # type: ignore[assignment]
    wide: bool = False,
) -> str:
    """Cells are already escaped markup. A ``wide`` table scrolls sideways on a phone, never squeezes."""
    if not rows:
        return f"<p>{escape(t['no_data'])}</p>"
    head = "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    table = f"<table{' class=wide' if wide else ''}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _service(row: dict[str, Any], lang: str) -> str:
    name: str = row["service_ja"] if lang == "ja" else row["service_en"]
    return name


def _purpose_name(registry: Registry, purpose: str, lang: str) -> str:
    p = registry.purposes.get(purpose)
    return purpose if p is None else (p.ja if lang == "ja" else p.en)


def _reason(reason: str, t: dict[str, str], registry: Registry, lang: str) -> str:
    kind, _, ids = reason.partition(":")
    if kind == "purpose":
        return t["purpose_refused"] + ", ".join(_purpose_name(registry, p, lang) for p in ids.split("+"))
    if kind == "vendor":
        vendor = registry.vendors.get(ids)
        return t["vendor_refused"] + (vendor.recipient if vendor else ids)
    return reason


def _tick(n: int) -> int:
    """The y-axis step for counts up to ``n``: 1, 2, 5, 10, 20, 25, 50, … (whole counts only), the
    smallest giving at most five steps, so every gridline is a whole count and no two labels repeat."""
    power = 1
    while True:
        for f in (1, 2, 5) if power == 1 else (1, 2, 2.5, 5):
            if n <= 5 * f * power:
                return int(f * power)
        power *= 10


def _nice(n: float) -> float:
    """The chart's top: n rounded up to 1, 2 or 5 times a power of ten."""
    top = 1.0
    while top < n:
        for f in (2, 2.5, 2):
            top *= f
            if top >= n:
                break
    return top


def _n(n: int) -> str:
    return f"{n:,}"


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}" if rate >= 0.1 or rate == 0 else f"{rate:.1%}"
