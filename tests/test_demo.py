"""The demo upstream: pages, encodings, vendor tags, upload streaming, redirects and assets."""

from __future__ import annotations

import ast
import asyncio
import re
import struct
import sys
import threading
import time
import tracemalloc
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from bs4 import BeautifulSoup
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2; the plain httpx it falls back to works the same for these tests.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from gate import demo
from gate.demo import bench_page, create_demo_app

UTF8_HTML = "text/html; charset=utf-8"

HTML_PAGES = [
    pytest.param("/", 200, id="job-list"),
    pytest.param("/jobs/dh-001", 200, id="hygienist-job"),
    pytest.param("/jobs/dds-002", 200, id="dentist-job"),
    pytest.param("/events", 200, id="events"),
    pytest.param("/apply", 200, id="apply-form"),
    pytest.param("/apply?job=dds-001", 200, id="apply-form-preselected"),
    pytest.param("/apply/thanks?bytes=42", 200, id="thanks"),
    pytest.param("/privacy", 200, id="privacy"),
    pytest.param("/bench/20k", 200, id="bench"),
    pytest.param("/jobs/no-such-job", 404, id="unknown-job"),
    pytest.param("/no/such/page", 404, id="unknown-path"),
]
ALL_HTML_PATHS = [p.values[0] for p in HTML_PAGES] + ["/sjis", "/bench/20k?charset=sjis"]

VENDOR_HOSTS = [
    "www.googletagmanager.com",
    "s.yimg.jp",
    "dynamic.criteo.com",
    "cdn.adjust.com",
    "connect.facebook.net",
    "www.facebook.com",
]
VENDOR_SNIPPETS = {
    "ga4": '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script>',
    "ga4-config": "gtag('config', 'G-DEMO12345');",
    "ads": '<script async src="https://www.googletagmanager.com/gtag/js?id=AW-100000001"></script>',
    "ads-config": "gtag('config', 'AW-100000001');",
    "gtm": "})(window,document,'script','dataLayer','GTM-DEMO123');</script>",
    "yahoo": '<script async src="https://s.yimg.jp/images/listing/tool/cv/ytag.js"></script>',
    "yahoo-ycl": 'ytag({"type":"ycl_cookie"});',
    "criteo": '<script type="text/javascript" src="//dynamic.criteo.com/js/ld/ld.js?a=10001" async="true">',
    "criteo-account": '{ event: "setAccount", account: 10001 }',
    "adjust": '"https://cdn.adjust.com/adjust-latest.min.js","Adjust",\n ["initSdk"',
    "adjust-init": "Adjust.initSdk({ appToken: 'demo00000001', environment: 'sandbox' });",
    "meta": "'https://connect.facebook.net/en_US/fbevents.js');\nfbq('init', '100000000000001');\n"
    "fbq('track', 'PageView');",
    "meta-noscript": 'src="https://www.facebook.com/tr?id=100000000000001&ev=PageView&noscript=1"',
}
SEED_COMPANY_TRACES = ["クオキャリア", "qua-lia", "5927", "南大塚", "中山"]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_demo_app()) as test_client:
        yield test_client


def page_text(client: TestClient, path: str) -> str:
    response = client.get(path)
    charset = "shift_jis" if "Shift_JIS" in response.headers["content-type"] else "utf-8"
    return response.content.decode(charset)


# --- pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), HTML_PAGES)
def test_html_pages_answer_utf8_html(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == UTF8_HTML
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.html is not None and soup.html["lang"] == "ja"
    assert soup.find("meta", attrs={"name": "viewport"}) is not None
    assert soup.find("img", src="/logo.svg") is not None
    assert soup.find("a", href="/download/brochure.pdf") is not None
    assert soup.find("footer") is not None


def test_job_list_links_every_job_to_its_detail_page(client: TestClient) -> None:
    soup = BeautifulSoup(client.get("/").text, "html.parser")
    links = {a["href"] for a in soup.select("li.card > a")}
    assert 5 <= len(links) <= 8
    for href in links:
        assert client.get(href).status_code == 200


def test_unknown_job_is_a_404_page_not_an_error(client: TestClient) -> None:
    response = client.get("/jobs/dh-999")
    assert response.status_code == 404
    assert "ページが見つかりません" in response.text


def test_apply_form_posts_multipart_and_preselects_the_job(client: TestClient) -> None:
    soup = BeautifulSoup(client.get("/apply?job=dds-001").text, "html.parser")
    form = soup.find("form")
    assert (form["method"], form["enctype"], form["action"]) == ("post", "multipart/form-data", "/apply")
    assert {field["name"] for field in form.find_all(["input", "select"])} >= {"name", "email", "phone", "job", "cv"}
    assert form.find("input", attrs={"name": "cv"})["type"] == "file"
    assert form.find("option", selected=True)["value"] == "dds-001"


def test_home_sets_two_first_party_cookies(client: TestClient) -> None:
    cookies = client.get("/").headers.get_list("set-cookie")
    assert len(cookies) == 2
    session = next(c for c in cookies if c.startswith("demo_session="))
    assert {"HttpOnly", "Path=/", "SameSite=lax"} <= {part.strip() for part in session.split(";")}
    assert "demo_pref=ja; Path=/" in cookies


def test_privacy_page_lists_five_purposes_and_five_recipients(client: TestClient) -> None:
    soup = BeautifulSoup(client.get("/privacy").text, "html.parser")
    purposes = [li.strong.get_text() for li in soup.select("#purposes ol > li")]
    assert purposes == [
        "商品・サービスの開発および改善",
        "コンテンツ・広告の配信および提供",
        "利用者へのサービスの提案",
        "コンテンツの配信および提供",
        "セキュリティ確保",
    ]
    recipients = [row.td.get_text() for row in soup.select("#external tbody tr")]
    for name in ["グーグル合同会社", "LINEヤフー株式会社", "CRITEO株式会社", "adjust株式会社", "Facebook Japan"]:
        assert sum(name in recipient for recipient in recipients) == 1, name
    assert len(recipients) == 5


@pytest.mark.parametrize("path", ALL_HTML_PATHS + ["/eucjp", "/static/site.js"])
def test_no_trace_of_the_seed_company(client: TestClient, path: str) -> None:
    text = client.get(path).content.decode("shift_jis" if "sjis" in path else "euc_jp" if "euc" in path else "utf-8")
    assert not [trace for trace in SEED_COMPANY_TRACES if trace in text]


# --- legacy encodings ------------------------------------------------------------------------------


def test_sjis_page_is_shift_jis_bytes(client: TestClient) -> None:
    response = client.get("/sjis")
    assert response.headers["content-type"] == "text/html; charset=Shift_JIS"
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")
    text = response.content.decode("shift_jis")  # strict: every byte is valid Shift_JIS
    assert '<meta charset="Shift_JIS">' in text
    assert "歯科衛生士の求人特集" in text
    assert "&#" not in text  # all the Japanese fits Shift_JIS; nothing fell back to references


def test_eucjp_page_declares_its_charset_only_in_meta(client: TestClient) -> None:
    response = client.get("/eucjp")
    assert response.headers["content-type"] == "text/html"
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")
    text = response.content.decode("euc_jp")
    assert '<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">' in text
    assert "歯科衛生士" in text
    assert "https://www.googletagmanager.com/gtag/js?id=G-DEMO12345" in text


# --- vendor tags -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", VENDOR_HOSTS)
@pytest.mark.parametrize("path", ALL_HTML_PATHS)
def test_every_html_page_carries_every_vendor_host(client: TestClient, path: str, host: str) -> None:
    assert f"//{host}/" in page_text(client, path)


@pytest.mark.parametrize("snippet", VENDOR_SNIPPETS.values(), ids=VENDOR_SNIPPETS.keys())
@pytest.mark.parametrize("path", ALL_HTML_PATHS)
def test_every_html_page_carries_the_published_tag_shapes(client: TestClient, path: str, snippet: str) -> None:
    assert snippet in page_text(client, path)


@pytest.mark.parametrize("path", ALL_HTML_PATHS + ["/eucjp"])
def test_templates_leave_no_placeholders(client: TestClient, path: str) -> None:
    raw = client.get(path).content
    assert b"$" not in raw and b"@@" not in raw


@pytest.mark.parametrize("path", ALL_HTML_PATHS)
def test_gtm_noscript_comes_right_after_body(client: TestClient, path: str) -> None:
    first = BeautifulSoup(page_text(client, path), "html.parser").body.find(True)
    assert first.name == "noscript"
    assert first.iframe["src"] == "https://www.googletagmanager.com/ns.html?id=GTM-DEMO123"


@pytest.mark.parametrize("path", ALL_HTML_PATHS)
def test_first_party_script_calls_the_vendor_globals(client: TestClient, path: str) -> None:
    scripts = BeautifulSoup(page_text(client, path), "html.parser").find_all("script", src=False)
    own = [s.string for s in scripts if "first-party" in (s.string or "")]
    assert len(own) == 1
    for call in ["gtag('event', 'view_item'", "fbq('track', 'ViewContent'", "ytag({"]:
        assert call in own[0]


def test_site_js_calls_vendor_globals_from_a_first_party_file(client: TestClient) -> None:
    response = client.get("/static/site.js")
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "gtag('event', 'add_to_wishlist'" in response.text and "fbq('track', 'AddToWishlist'" in response.text


@pytest.mark.parametrize(
    ("path", "marks"),
    [
        ("/", ['{ event: "viewList", item: ["dh-001", "dh-002", "dh-003"] }']),
        ("/jobs/dh-003", ['{ event: "viewItem", item: "dh-003" }', 'var current = {"id": "dh-003"']),
        (
            "/apply/thanks?bytes=1",
            [
                "'send_to': 'AW-100000001/DemoApply-Label_01'",
                '"type": "yss_conversion"',
                '"yahoo_conversion_id": "1000000001"',
                "fbq('track', 'SubmitApplication');",
            ],
        ),
    ],
    ids=["list-viewList", "detail-viewItem", "thanks-conversions"],
)
def test_page_specific_vendor_events(client: TestClient, path: str, marks: list[str]) -> None:
    text = client.get(path).text
    for mark in marks:
        assert mark in text


def test_conversions_fire_only_on_the_thanks_page(client: TestClient) -> None:
    assert "'conversion'" not in client.get("/apply").text
    assert "yss_conversion" not in client.get("/").text


# --- upload ----------------------------------------------------------------------------------------

BOUNDARY = "----demo-boundary-7MA4YWxkTrZu0gW"


def multipart_parts(cv_size: int, block: int = 64 * 1024) -> Iterator[bytes]:
    """An application as a browser would send it, the CV yielded in blocks."""
    for name, value in [("name", "山田 花子"), ("email", "hanako@example.jp"), ("job", "dh-001")]:
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="cv"; filename="rirekisho.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    full, rest = divmod(cv_size, block)
    chunk = b"%" * block
    for _ in range(full):
        yield chunk
    yield b"%" * rest
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def test_upload_of_5mb_redirects_with_the_byte_count_and_a_cookie(client: TestClient) -> None:
    body = b"".join(multipart_parts(5 * 1024 * 1024))
    response = client.post("/apply", content=body, headers=MULTIPART, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/apply/thanks?bytes={len(body)}"
    assert response.headers.get_list("set-cookie") == ["demo_applied=1; HttpOnly; Path=/"]
    thanks = client.get(response.headers["location"])
    assert f"{len(body):,}" in BeautifulSoup(thanks.text, "html.parser").find(id="received-bytes").get_text()


def test_upload_from_an_html_form_client_is_accepted(client: TestClient) -> None:
    cv = b"%PDF-1.4 " + bytes(5 * 1024 * 1024)
    response = client.post(
        "/apply", data={"name": "山田 花子"}, files={"cv": ("cv.pdf", cv, "application/pdf")}, follow_redirects=False
    )
    assert response.status_code == 303
    received = int(response.headers["location"].removeprefix("/apply/thanks?bytes="))
    assert len(cv) < received < len(cv) + 1024


def test_upload_without_multipart_is_refused(client: TestClient) -> None:
    response = client.post("/apply", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert "set-cookie" not in response.headers


def test_aborted_upload_ends_quietly() -> None:
    messages = [{"type": "http.request", "body": b"--x\r\n", "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/apply",
        "raw_path": b"/apply",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=x")],
        "server": ("demo", 80),
    }

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(create_demo_app()(scope, receive, send))  # raises if the disconnect escapes as an error
    assert sent[0]["status"] == 400
    assert not messages


@pytest.mark.parametrize("raw", ["abc", "-5", "1" * 40, ""])
def test_thanks_page_shows_zero_for_a_bad_byte_count(client: TestClient, raw: str) -> None:
    text = client.get("/apply/thanks", params={"bytes": raw}).text
    assert '<strong id="received-bytes">0</strong>' in text


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """The demo on real uvicorn: in-process clients buffer bodies, so streaming needs a socket."""
    config = uvicorn.Config(create_demo_app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_large_upload_streams_without_holding_the_body(live_url: str) -> None:
    cv_size = 48 * 1024 * 1024
    expected = sum(len(part) for part in multipart_parts(cv_size))
    tracemalloc.start()
    try:
        with httpx.Client(base_url=live_url, timeout=60) as http:
            response = http.post("/apply", content=multipart_parts(cv_size), headers=MULTIPART)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 303
    assert response.headers["location"] == f"/apply/thanks?bytes={expected}"
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes while uploading {expected:,}"


# --- redirects and assets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url", ["http://testserver", "https://jobs.example:8443", "http://127.0.0.1:8000"], ids=str
)
def test_old_jobs_redirects_to_the_absolute_site_root(base_url: str) -> None:
    with TestClient(create_demo_app(), base_url=base_url) as test_client:
        response = test_client.get("/old-jobs", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == base_url + "/"


@pytest.mark.parametrize(
    ("path", "content_type", "magic"),
    [
        ("/logo.svg", "image/svg+xml", b"<svg "),
        ("/static/logo.png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("/download/brochure.pdf", "application/pdf", b"%PDF-1.4\n"),
    ],
    ids=["svg", "png", "pdf"],
)
def test_assets_are_served_with_their_type(client: TestClient, path: str, content_type: str, magic: bytes) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content.startswith(magic)
    assert int(response.headers["content-length"]) == len(response.content)


def test_logo_png_is_a_valid_png(client: TestClient) -> None:
    data, offset, kinds = client.get("/static/logo.png").content, 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        assert struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])[0] == zlib.crc32(kind + body)
        kinds.append(kind)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">II", data[16:24]) == (32, 32)


def test_brochure_is_a_few_kb_of_binary_pdf_with_a_correct_xref(client: TestClient) -> None:
    data = client.get("/download/brochure.pdf").content
    assert 2048 < len(data) < 16384
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    xref = int(re.search(rb"startxref\n(\d+)\n%%EOF\n$", data).group(1))
    assert data[xref:].startswith(b"xref\n")
    offsets = [int(line[:10]) for line in data[xref:].split(b"\n")[3:] if line.endswith(b" n ")]
    for number, offset in enumerate(offsets, start=1):
        assert data[offset:].startswith(b"%d 0 obj\n" % number)


# --- benchmark pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["utf-8", "sjis"])
@pytest.mark.parametrize(("size", "target"), [("20k", 20 * 1024), ("100k", 100 * 1024), ("1m", 1024 * 1024)])
def test_bench_page_is_within_15_percent_of_its_size(size: str, target: int, charset: str) -> None:
    page = bench_page(size, charset)
    assert abs(len(page) - target) <= 0.15 * target
    text = page.decode("shift_jis" if charset == "sjis" else "utf-8")
    assert all(f"//{host}/" in text for host in VENDOR_HOSTS)


def test_bench_pages_grow_by_job_cards_not_filler() -> None:
    cards = [bench_page(size).count(b'<li class="card"') for size in ("20k", "100k", "1m")]
    assert cards[0] < cards[1] < cards[2]
    assert cards[2] > 500


@pytest.mark.parametrize(
    ("path", "size", "charset", "content_type"),
    [
        ("/bench/100k", "100k", "utf-8", UTF8_HTML),
        ("/bench/100k?charset=sjis", "100k", "sjis", "text/html; charset=Shift_JIS"),
    ],
)
def test_bench_route_serves_bench_page(
    client: TestClient, path: str, size: str, charset: str, content_type: str
) -> None:
    response = client.get(path)
    assert response.headers["content-type"] == content_type
    assert response.content == bench_page(size, charset)


@pytest.mark.parametrize("path", ["/bench/5m", "/bench/20k?charset=latin-1"])
def test_unknown_bench_page_is_404(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_bench_page_rejects_unknown_size() -> None:
    with pytest.raises(ValueError, match="3k"):
        bench_page("3k")


# --- isolation -------------------------------------------------------------------------------------


def test_demo_imports_only_stdlib_and_starlette() -> None:
    tree = ast.parse(Path(demo.__file__).read_text(encoding="utf-8"))
    roots = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    assert roots - {"starlette"} <= set(sys.stdlib_module_names)
    # No client library: the demo only answers requests, it never makes one.
    assert not roots & {"gate", "httpx", "urllib", "http", "socket", "asyncio", "ssl"}
