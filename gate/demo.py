"""The embedded demo upstream: デンタルキャリア・デモ, a fictional job site for dental hygienists and dentists.

Every page carries the five vendors' tags in their published shapes, with fake ids, so gate has real
markup to gate. Stdlib and starlette only; it imports no other gate module and never opens a
connection: vendor hosts appear in the pages as URLs and nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import string
import struct
import zlib
from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

PAGES_DIR = Path(__file__).with_name("demo_pages")

# Fake ids in each vendor's real format; none of them belongs to an account.
VENDOR_IDS = {
    "GA4_ID": "G-DEMO12345",
    "ADS_ID": "AW-100000001",
    "ADS_CONVERSION": "AW-100000001/DemoApply-Label_01",
    "GTM_ID": "GTM-DEMO123",
    "YAHOO_CONVERSION_ID": "1000000001",
    "YAHOO_CONVERSION_LABEL": "DEMOLABEL0000000001",
    "YAHOO_RETARGETING_ID": "DEMO000001",
    "CRITEO_ACCOUNT": "10001",
    "ADJUST_APP_TOKEN": "demo00000001",
    "META_PIXEL_ID": "100000000000001",
    "CRITEO_EVENTS": "$CRITEO_EVENTS",  # kept as a placeholder: vendor_head() fills it per page
}


def _read_vendor_tags() -> dict[str, str]:
    """demo_pages/vendor_tags.html split at its "@@ name" lines, with the fake ids filled in."""
    text = (PAGES_DIR / "vendor_tags.html").read_text(encoding="utf-8")
    pieces = re.split(r"^@@ (\w+)\n", text, flags=re.M)
    return {
        name: string.Template(body.strip()).substitute(VENDOR_IDS)
        for name, body in zip(pieces[1::2], pieces[2::2], strict=True)
    }


# The vendors' embed codes, one entry per snippet as a site owner would paste it; pages are built from them.
VENDOR_TAGS: dict[str, str] = _read_vendor_tags()
HEAD_TAGS = ("gtm", "ga4", "google_ads", "yahoo", "criteo", "adjust", "meta_pixel")
CONVERSION_TAGS = ("google_ads_conversion", "yahoo_conversion", "meta_application")

BENCH_SIZES = {"20k": 20 * 1024, "100k": 100 * 1024, "1m": 1024 * 1024}
BENCH_CHARSETS = {"utf-8": "utf-8", "sjis": "Shift_JIS"}


@functools.cache
def _asset(name: str) -> str:
    return (PAGES_DIR / name).read_text(encoding="utf-8")


@functools.cache
def _site() -> dict[str, Any]:
    site: dict[str, Any] = json.loads(_asset("site.json"))
    site["by_id"] = {job["id"]: job for job in site["jobs"]}
    return site


def _criteo_event(event: str, **fields: Any) -> str:
    """One criteo_q entry in the vendor's object-literal style: { event: "viewItem", item: "dh-001" }."""
    parts = [f'event: "{event}"'] + [f"{key}: {json.dumps(value)}" for key, value in fields.items()]
    return "{ " + ", ".join(parts) + " }"


def vendor_head(criteo_event: str = "") -> str:
    """Every vendor's head snippet, in the order a site would paste them."""
    events = f",\n  {criteo_event}" if criteo_event else ""
    return "\n".join(VENDOR_TAGS[name] for name in HEAD_TAGS).replace("$CRITEO_EVENTS", events)


def render(
    title: str,
    main: str,
    *,
    criteo_event: str = "",
    current_job: dict[str, Any] | None = None,
    conversion: bool = False,
    charset: str = "utf-8",
) -> str:
    """A full page: layout, first-party style and script, and every vendor tag."""
    current = json.dumps({"id": current_job["id"], "name": current_job["title"]}) if current_job else "null"
    return string.Template(_asset("layout.html")).substitute(
        charset=charset,
        title=escape(title),
        vendor_head=vendor_head(criteo_event),
        style=_asset("style.css"),
        body_top=VENDOR_TAGS["gtm_noscript"],
        main=main,
        page_script=string.Template(_asset("page_script.html")).substitute(
            YAHOO_RETARGETING_ID=VENDOR_IDS["YAHOO_RETARGETING_ID"], current_job=current.replace("</", "<\\/")
        ),
        body_end="\n".join(VENDOR_TAGS[name] for name in CONVERSION_TAGS) if conversion else "",
    )


def _escaped(record: dict[str, Any], **overrides: str) -> dict[str, str]:
    """A record's text fields, HTML-escaped once so page templates can interpolate them as they are."""
    merged = {**record, **{key: value for key, value in overrides.items() if value}}
    return {key: escape(value) for key, value in merged.items() if isinstance(value, str)}


def _features(job: dict[str, Any]) -> str:
    return "".join(f"<li>{escape(feature)}</li>" for feature in job["features"])


def job_card(job: dict[str, Any], card_id: str = "", clinic: str = "", area: str = "") -> str:
    """One job in a list; bench pages reuse a job under another card id, clinic and area."""
    j = _escaped(job, card_id=card_id or job["id"], clinic=clinic, area=area)
    part_time = " part" if job["employment"] in ("パート", "非常勤") else ""
    badges = f'<span class="badge">{j["kind"]}</span><span class="badge{part_time}">{j["employment"]}</span>'
    return f"""<li class="card" data-job-id="{j["card_id"]}" data-job-name="{j["title"]}">
  <a href="/jobs/{j["id"]}">{badges}
  <h2>{j["title"]}</h2></a>
  <p class="clinic">{j["clinic"]}・{j["area"]}</p>
  <dl class="facts"><dt>給与</dt><dd>{j["salary"]}</dd><dt>勤務時間</dt><dd>{j["hours"]}</dd></dl>
  <ul class="features">{_features(job)}</ul>
  <div class="actions"><a class="button" href="/apply?job={j["id"]}">応募する</a>
  <button type="button" class="save" data-save-job="{j["card_id"]}" aria-pressed="false">気になる</button></div>
</li>"""


def _job_list_main(extra_cards: str = "") -> str:
    jobs = _site()["jobs"]
    cards = "\n".join(job_card(job) for job in jobs)
    return f"""<section class="hero"><h1>歯科衛生士・歯科医師の求人</h1>
<p>予防歯科、訪問歯科、矯正、インプラント。あなたに合う職場を探せます。</p></section>
<p><img src="/logo.svg" alt="デンタルキャリア・デモのロゴ" width="64" height="64"> 新着の求人 {len(jobs)} 件。
医院の紹介は<a href="/download/brochure.pdf">サービス案内(PDF)</a>をご覧ください。</p>
<ul class="cards">
{cards}
{extra_cards}
</ul>"""


def _list_event() -> str:
    return _criteo_event("viewList", item=[job["id"] for job in _site()["jobs"][:3]])


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code)


def _sjis(text: str) -> Response:
    # Characters outside JIS X 0208 become character references, as old CMSs did.
    body = text.encode("shift_jis", errors="xmlcharrefreplace")
    return Response(body, media_type="text/html; charset=Shift_JIS")


def _not_found_page() -> str:
    main = """<h1>ページが見つかりません</h1>
<p>お探しの求人は掲載が終了したか、URLが変わった可能性があります。</p>
<p><a class="button" href="/">求人一覧へ戻る</a></p>"""
    return render("ページが見つかりません", main)


# --- pages -----------------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    response = _html(render("求人一覧", _job_list_main(), criteo_event=_list_event()))
    session = request.cookies.get("demo_session", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", session):
        session = secrets.token_urlsafe(16)
    response.set_cookie("demo_session", session, path="/", httponly=True, samesite="lax")
    response.set_cookie("demo_pref", "ja", path="/", samesite=None)
    return response


async def job_detail(request: Request) -> Response:
    job = _site()["by_id"].get(request.path_params["job_id"])
    if job is None:
        return _html(_not_found_page(), status_code=404)
    j = _escaped(job)
    main = f"""<p><a href="/">求人一覧</a> &gt; {j["clinic"]}</p>
<article class="panel" data-job-id="{j["id"]}" data-job-name="{j["title"]}">
<p><span class="badge">{j["kind"]}</span><span class="badge">{j["employment"]}</span></p>
<h1>{j["title"]}</h1>
<p class="clinic">{j["clinic"]}・{j["area"]}</p>
<ul class="features">{_features(job)}</ul>
<p>{j["description"]}</p>
<dl class="facts">
  <dt>給与</dt><dd>{j["salary"]}</dd>
  <dt>勤務時間</dt><dd>{j["hours"]}</dd>
  <dt>休日</dt><dd>{j["holidays"]}</dd>
  <dt>アクセス</dt><dd>{j["access"]}</dd>
</dl>
<div class="actions"><a class="button" href="/apply?job={j["id"]}">この求人に応募する</a>
<button type="button" class="save" data-save-job="{j["id"]}" aria-pressed="false">気になる</button></div>
</article>
<p>医院の雰囲気は<a href="/download/brochure.pdf">サービス案内(PDF)</a>でも紹介しています。</p>"""
    criteo = _criteo_event("viewItem", item=job["id"])
    return _html(render(job["title"], main, criteo_event=criteo, current_job=job))


async def events(request: Request) -> Response:
    items = "\n".join(
        f"""<li><p class="date">{ev["date"]}</p><h2>{ev["title"]}</h2>
<p>会場: {ev["place"]}</p><p>{ev["summary"]}</p></li>"""
        for ev in map(_escaped, _site()["events"])
    )
    main = f"""<h1>キャリアイベント</h1>
<p class="lead">転職フェア、相談会、見学ツアーを開催しています。参加は無料です(すべて架空のイベントです)。</p>
<ul class="events">
{items}
</ul>"""
    return _html(render("キャリアイベント", main))


async def apply_form(request: Request) -> Response:
    chosen = request.query_params.get("job", "")
    options = "".join(
        f'<option value="{j["id"]}"{" selected" if j["id"] == escape(chosen) else ""}>'
        f"{j['kind']}|{j['clinic']}({j['employment']})</option>"
        for j in map(_escaped, _site()["jobs"])
    )
    main = f"""<h1>求人に応募する</h1>
<p class="lead">必要事項を入力し、履歴書・職務経歴書を添付してください。</p>
<form class="apply" method="post" enctype="multipart/form-data" action="/apply">
  <label>お名前<input name="name" required autocomplete="name"></label>
  <label>メールアドレス<input type="email" name="email" required autocomplete="email"></label>
  <label>電話番号<input type="tel" name="phone" autocomplete="tel"></label>
  <label>応募する求人<select name="job">{options}</select></label>
  <label>履歴書・職務経歴書(PDF・Word、50MBまで)<input type="file" name="cv" accept=".pdf,.doc,.docx"></label>
  <label class="check"><input type="checkbox" name="agree" value="1" required>
    <span><a href="/privacy">プライバシーポリシー</a>に同意します</span></label>
  <button type="submit">応募する</button>
</form>"""
    return _html(render("求人に応募する", main))


async def apply_submit(request: Request) -> Response:
    """Count the upload as it streams past; the body is never held, whatever its size."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        main = "<h1>応募を受け付けられませんでした</h1><p>応募フォームから送信してください。</p>"
        return _html(render("応募エラー", main), status_code=415)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
    except ClientDisconnect:  # an aborted upload is the browser's choice, not a server error
        return Response(status_code=400)
    response = RedirectResponse(f"/apply/thanks?bytes={received}", status_code=303)
    response.set_cookie("demo_applied", "1", path="/", httponly=True, samesite=None)
    return response


async def apply_thanks(request: Request) -> Response:
    raw = request.query_params.get("bytes", "0")
    received = int(raw) if raw.isdigit() and len(raw) < 16 else 0
    main = f"""<h1>ご応募ありがとうございました</h1>
<p>応募内容を受け付けました。担当者から3営業日以内にご連絡します(デモのため、実際には連絡しません)。</p>
<p class="panel">受信したデータ: <strong id="received-bytes">{received:,}</strong> バイト</p>
<p><a class="button" href="/">求人一覧へ戻る</a></p>"""
    criteo = _criteo_event("trackTransaction", id="demo-apply", item=[{"id": "apply", "price": 0, "quantity": 1}])
    return _html(render("応募完了", main, criteo_event=criteo, conversion=True))


async def privacy(request: Request) -> Response:
    return _html(render("プライバシーポリシー", _asset("privacy.html")))


async def sjis_page(request: Request) -> Response:
    main = """<h1>歯科衛生士の求人特集(Shift_JIS のページ)</h1>
<p class="lead">このページは、古い求人管理システムから出力されたページを想定して Shift_JIS で配信しています。</p>
""" + _job_list_main()
    return _sjis(render("歯科衛生士の求人特集", main, criteo_event=_list_event(), charset="Shift_JIS"))


async def eucjp_page(request: Request) -> Response:
    heads = "\n".join(VENDOR_TAGS[name] for name in ("ga4", "meta_pixel"))
    body = string.Template(_asset("eucjp.html")).substitute(vendor_head=heads).encode("euc_jp")
    # The charset is declared only in the page's <meta http-equiv>, as on many old sites.
    return Response(body, headers={"content-type": "text/html"})


async def old_jobs(request: Request) -> Response:
    return RedirectResponse(str(request.base_url), status_code=301)


async def not_found(request: Request, exc: Exception) -> Response:
    return _html(_not_found_page(), status_code=404)


# --- benchmark pages -------------------------------------------------------------------------------


def _bench_card(n: int) -> str:
    site = _site()
    names, kinds, areas = site["bench"]["clinic_names"], site["bench"]["clinic_kinds"], site["bench"]["areas"]
    clinic = names[n % len(names)] + kinds[(n // len(names)) % len(kinds)]
    job = site["jobs"][n % len(site["jobs"])]
    return job_card(job, card_id=f"bench-{n:05d}", clinic=clinic, area=areas[(n * 7) % len(areas)])


@functools.cache
def bench_page(size: str, charset: str = "utf-8") -> bytes:
    """The job list padded with job cards to about `size` bytes ("20k", "100k", "1m") in "utf-8" or "sjis"."""
    if size not in BENCH_SIZES or charset not in BENCH_CHARSETS:
        known = f"known: sizes {', '.join(BENCH_SIZES)}; charsets {', '.join(BENCH_CHARSETS)}"
        raise ValueError(f"bench page: unknown size {size!r} or charset {charset!r} ({known})")
    codec = "shift_jis" if charset == "sjis" else "utf-8"

    def page(cards: list[str]) -> bytes:
        main = _job_list_main("\n".join(cards))
        text = render("求人一覧", main, criteo_event=_list_event(), charset=BENCH_CHARSETS[charset])
        return text.encode(codec, errors="xmlcharrefreplace")

    target = BENCH_SIZES[size]
    cards: list[str] = []
    total = len(page(cards))
    while True:
        card = _bench_card(len(cards))
        grows = len(card.encode(codec, errors="xmlcharrefreplace")) + 1
        if total + grows / 2 > target:  # stop where the next card would overshoot more than it helps
            return page(cards)
        cards.append(card)
        total += grows


async def bench(request: Request) -> Response:
    size, charset = request.path_params["size"], request.query_params.get("charset", "utf-8")
    if size not in BENCH_SIZES or charset not in BENCH_CHARSETS:
        raise HTTPException(status_code=404)
    return Response(bench_page(size, charset), media_type=f"text/html; charset={BENCH_CHARSETS[charset]}")


# --- assets: small non-HTML bodies a proxy must pass through byte for byte -------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def logo_png(side: int = 32) -> bytes:
    """A teal square with a white centre, as a real RGB PNG."""
    teal, white = b"\x0f\x76\x6e", b"\xff\xff\xff"
    inner = range(side // 4, side - side // 4)
    rows = b"".join(
        b"\x00" + b"".join(white if x in inner and y in inner else teal for x in range(side)) for y in range(side)
    )
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows, 9)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _pdf_stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


@functools.cache
def brochure_pdf() -> bytes:
    """A one-page PDF plus 4 KiB of binary filler, with a correct xref table."""
    text = b"BT /F1 24 Tf 72 760 Td (Dental Career Demo) Tj 0 -36 Td /F1 13 Tf (A fictional brochure.) Tj ET"
    filler = b"".join(hashlib.sha256(b"demo-brochure-%d" % n).digest() for n in range(128))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        _pdf_stream(text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        _pdf_stream(filler),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _asset_endpoint(
    load: Callable[[], bytes | str], media_type: str, headers: dict[str, str] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return Response(load(), media_type=media_type, headers=headers)

    return endpoint


PDF_HEADERS = {"content-disposition": 'inline; filename="brochure.pdf"'}


def create_demo_app() -> Starlette:
    """The demo site as an ASGI app; it needs no settings and reaches nothing outside itself."""
    routes = [
        Route("/", home),
        Route("/jobs/{job_id}", job_detail),
        Route("/events", events),
        Route("/apply", apply_form, methods=["GET"]),
        Route("/apply", apply_submit, methods=["POST"]),
        Route("/apply/thanks", apply_thanks),
        Route("/privacy", privacy),
        Route("/sjis", sjis_page),
        Route("/eucjp", eucjp_page),
        Route("/old-jobs", old_jobs),
        Route("/bench/{size}", bench),
        Route("/logo.svg", _asset_endpoint(lambda: _asset("logo.svg").encode(), "image/svg+xml")),
        Route("/static/logo.png", _asset_endpoint(logo_png, "image/png")),
        Route("/static/site.js", _asset_endpoint(lambda: _asset("site.js"), "text/javascript")),
        Route("/download/brochure.pdf", _asset_endpoint(brochure_pdf, "application/pdf", PDF_HEADERS)),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})
