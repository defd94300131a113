"""The page-integrity oracle: the DOM Chromium builds through gate equals the DOM it builds from the
origin directly, outside what gate added (elements carrying data-gate) and the vendor tags it removed.

Two real origins serve the demo site's pages (rendered once to files) and two large job lists (about
100 KB and 1 MB):
- nginx from Debian, a real server on 127.0.0.1 (its own prefix, config and pid file; started and
  stopped by PID), with ``gzip on`` under /gzip/ and off under /identity/;
- a Python origin on real uvicorn that sends the same files brotli-compressed (Python's brotli module,
  quality 11), streamed in 16 KiB pieces, under /br/.

Chromium loads every page from the origin and through gate (a gate in front of each origin), with
JavaScript off (the DOM is the parser's alone) and, for "accept all", on. Nothing here reads HTML
with gate's code: Chromium parses, the comparison is on Chromium's DOM, and the only gate data used is
vendors.toml, to tell whether a removed element is a vendor's tag.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import brotli
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gate import urls, vendors
from gate.app import create_app
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.demo import bench_page, create_demo_app

from .browser_support import ROOT, chromium_missing, new_context
from .conftest import KEY, gate_settings, serve

if (_reason := chromium_missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser

REGISTRY = vendors.load()
# file name -> the demo site's path it is rendered from (or a large page)
DEMO_PAGES = {
    "home.html": "/",
    "job.html": "/jobs/dh-001",
    "events.html": "/events",
    "apply.html": "/apply",
    "privacy.html": "/privacy",
    "sjis.html": "/sjis",
    "eucjp.html": "/eucjp",
}
LARGE_PAGES = {
    "list-100k.html": ("100k", "utf-8"),
    "list-100k-sjis.html": ("100k", "sjis"),
    "list-1m.html": ("1m", "utf-8"),
}
PAGES = list(DEMO_PAGES) + list(LARGE_PAGES)
ENCODINGS = ("identity", "gzip", "br")
CONSENTS = ("undecided", "accept_all", "accept_all+js")
# The large pages are read without JavaScript only: their scripts are the demo pages' own.
CASES = [
    (name, encoding, consent)
    for name in PAGES
    for encoding in ENCODINGS
    for consent in CONSENTS
    if not (name in LARGE_PAGES and consent.endswith("+js"))
]
CHUNK = 16 * 1024


# -- the pages ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docroot(tmp_path_factory) -> Path:
    """The pages as files, exactly as the demo site serves them."""
    root = tmp_path_factory.mktemp("docroot")
    with serve(create_demo_app()) as demo:
        for name, path in DEMO_PAGES.items():
            r = httpx.get(demo + path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
            (root / name).write_bytes(r.content)
    for name, (size, charset) in LARGE_PAGES.items():
        (root / name).write_bytes(bench_page(size, charset))
    assert 900_000 < (root / "list-1m.html").stat().st_size < 1_100_000
    return root


# -- nginx ------------------------------------------------------------------------------------------------
def nginx_binary() -> str | None:
    """nginx on PATH (.ci/run puts Debian's unpacked binary there), else the unpacked one, else Debian's."""
    for candidate in (shutil.which("nginx"), str(ROOT / ".ci/cache/nginx/usr/sbin/nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# As root (CI), workers would run as "nobody" and could not read pytest's private temp directories.
NGINX_CONF = """{user}daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  types {{ text/html html; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    location /identity/ {{ alias {root}/; gzip off; }}
    location /gzip/ {{ alias {root}/; gzip on; gzip_min_length 1; }}
  }}
}}
"""


@pytest.fixture(scope="module")
def nginx(docroot, tmp_path_factory) -> Iterator[str]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (.ci/run unpacks Debian's under .ci/cache/nginx)")
    prefix = tmp_path_factory.mktemp("nginx")
    for _attempt in range(3):  # the port is free when picked; another process may take it first
        port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port, root=docroot))
        with open(prefix / "stderr.log", "wb") as log:
            process = subprocess.Popen(
                [binary, "-p", str(prefix), "-e", "stderr", "-c", str(prefix / "nginx.conf")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            if _wait_http(base + "/identity/home.html", process):
                break
        except BaseException:
            _stop(process)
            raise
        _stop(process)
    else:
        raise RuntimeError("nginx did not start: " + (prefix / "stderr.log").read_text(errors="replace"))
    try:
        # What gate will be sent: the origin really compresses under /gzip/ and really does not under /identity/.
        headers = {"accept-encoding": "gzip, deflate, br", "x-forwarded-for": "127.0.0.1"}
        assert httpx.get(base + "/gzip/home.html", headers=headers).headers.get("content-encoding") == "gzip"
        assert "content-encoding" not in httpx.get(base + "/identity/home.html", headers=headers).headers
        yield base
    finally:
        _stop(process)


def _wait_http(url: str, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen) -> None:
    """By its PID: SIGQUIT is nginx's graceful stop (the master takes its worker with it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- the brotli origin ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def brotli_origin(docroot) -> Iterator[str]:
    compressed = {p.name: brotli.compress(p.read_bytes(), quality=11) for p in docroot.glob("*.html")}

    async def page(request: Request) -> Response:
        body = compressed.get(request.path_params["name"])
        if body is None:
            return Response(status_code=404)

        async def pieces():
            for i in range(0, len(body), CHUNK):
                yield body[i : i + CHUNK]

        return StreamingResponse(pieces(), headers={"content-encoding": "br", "content-type": "text/html"})

    with serve(Starlette(routes=[Route("/br/{name}", page)])) as base:
        yield base


# -- gates in front of them ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def origins(nginx, brotli_origin) -> Iterator[dict[str, tuple[str, str]]]:
    """encoding -> (the origin's base URL, gate's base URL in front of it)."""
    with (
        serve(create_app(gate_settings(nginx))) as via_nginx,
        serve(create_app(gate_settings(brotli_origin))) as via_python,
    ):
        yield {"identity": (nginx, via_nginx), "gzip": (nginx, via_nginx), "br": (brotli_origin, via_python)}


# -- the DOM as Chromium built it -------------------------------------------------------------------
# The tree below <html>: an element is {"n": "namespace name", "a": ["ns name=value", ...] sorted, "k":
# [children]}, a text node a string, a comment {"c": data}. data-gate subtrees are left out: gate added them.
SNAPSHOT_JS = """() => {
  function node(n) {
    if (n.nodeType === 3) return n.data;
    if (n.nodeType === 8) return {c: n.data};
    if (n.nodeType !== 1 || n.hasAttribute('data-gate')) return null;
    const kids = n.localName === 'template' ? n.content.childNodes : n.childNodes;
    return {n: n.namespaceURI + ' ' + n.localName,
            a: Array.from(n.attributes, a => (a.namespaceURI || '') + ' ' + a.name + '=' + a.value).sort(),
            k: Array.from(kids, node).filter(x => x !== null)};
  }
  // One string: Playwright carries a large nested object across far more slowly than its JSON text.
  return JSON.stringify({charset: document.characterSet, mode: document.compatMode, title: document.title,
                         doctype: document.doctype ? document.doctype.name : null,
                         root: node(document.documentElement)});
}"""

_direct: dict[tuple[str, str, bool], dict[str, Any]] = {}


def snapshot(browser: Browser, url: str, javascript: bool, cookie: str | None = None) -> dict[str, Any]:
    context, _ = new_context(browser, url, java_script_enabled=javascript)
    try:
        if cookie is not None:
            context.add_cookies([{"name": COOKIE_NAME, "value": cookie, "url": url}])
        page = context.new_page()
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        if javascript:
            page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")
        return json.loads(page.evaluate(SNAPSHOT_JS))
    finally:
        context.close()


def names_a_vendor(el: dict[str, Any], page_url: str) -> bool:
    """Does the element itself (its attributes, the text of a script or style) name a vendor's tag?
    URLs are resolved with urljoin; the hosts and signatures are vendors.toml's."""
    text = "".join(k for k in el["k"] if isinstance(k, str)) if el["n"].endswith((" script", " style")) else ""
    return _names_a_vendor(el["n"], tuple(el["a"]), text, page_url)


@functools.lru_cache(maxsize=65536)  # a long page repeats its elements
def _names_a_vendor(name: str, attrs: tuple[str, ...], text: str, page_url: str) -> bool:
    found: set[str] = set(REGISTRY.tags_in_text(text)) if text.strip() else set()
    for attr in attrs:
        value = attr.split("=", 1)[1]
        found |= REGISTRY.tags_in_text(value)
        target = urlsplit(urljoin(page_url, value.strip()))
        if target.scheme in ("http", "https") and target.hostname:
            found |= REGISTRY.tags_for_url(
                urls.URL(target.scheme, target.hostname, target.path + ("?" + target.query if target.query else ""))
            )
    return bool(found)


def without_vendors(el: dict[str, Any], page_url: str) -> dict[str, Any]:
    """The tree without elements that name a vendor, nor the <noscript>s that held only those."""
    kids: list[Any] = []
    for k in el["k"]:
        if isinstance(k, dict) and "n" in k:
            if names_a_vendor(k, page_url):
                continue
            k = without_vendors(k, page_url)
            if k["n"].endswith(" noscript") and not any(not isinstance(c, str) or c.strip() for c in k["k"]):
                continue
        kids.append(k)
    return el | {"k": kids}


SECTIONS = ("html", "head", "body")


def tokens(root: dict[str, Any], tree: bool) -> list[str]:
    """The tree in document order, adjacent text merged (the parser merges it once what stood between
    is gone). ``tree``: with each node's depth, so the shape counts; else the order alone, and <html>,
    <head> and <body> (with their attributes) listed first."""
    out: list[str] = []
    last_text: list[int | None] = [None]

    def add(depth: int, kind: str, value: Any) -> None:
        prefix = f"{depth} " if tree else ""
        if kind == "text" and last_text[0] == depth and out and out[-1].startswith(prefix + "#text "):
            out[-1] += value
            return
        out.append(prefix + ("#text " + value if kind == "text" else json.dumps([kind, value], ensure_ascii=False)))
        last_text[0] = depth if kind == "text" else None

    def walk(el: dict[str, Any], depth: int) -> None:
        if tree or el["n"].split(" ")[1] not in SECTIONS:
            add(depth, "element", [el["n"], el["a"]])
        else:  # where the parser opens these can move; what they carry cannot
            out.insert(0, json.dumps(["section", el["n"], el["a"]]))
        for k in el["k"]:
            if isinstance(k, str):
                add(depth + 1 if tree else 0, "text", k)
            elif "c" in k:
                add(depth + 1, "comment", k["c"])
            else:
                walk(k, depth + 1)

    walk(root, 0)
    return out


def differences(direct: list[str], gated: list[str]) -> list[str]:
    """Each run of nodes that differs, shortly; the common head and tail are set aside first (a page
    cut short differs in one long tail, which difflib would take minutes over)."""
    if direct == gated:
        return []
    head = next(
        (i for i, (a, b) in enumerate(zip(direct, gated, strict=False)) if a != b), min(len(direct), len(gated))
    )
    tail = 0
    while tail < min(len(direct), len(gated)) - head and direct[-1 - tail] == gated[-1 - tail]:
        tail += 1
    a, b = direct[head : len(direct) - tail], gated[head : len(gated) - tail]
    if len(a) + len(b) > 4000:
        runs = [("replace", 0, len(a), 0, len(b))]
    else:
        runs = [r for r in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if r[0] != "equal"]
    return [
        f"{op} origin[{head + i1}:{head + i2}] gate[{head + j1}:{head + j2}]:\n"
        f"  origin: {[t[:300] for t in a[i1 : min(i2, i1 + 3)]]}\n"
        f"  gate:   {[t[:300] for t in b[j1 : min(j2, j1 + 3)]]}"
        for op, i1, i2, j1, j2 in runs
    ]


@pytest.mark.parametrize(("name", "encoding", "consent"), CASES, ids=["-".join(c) for c in CASES])
def test_the_dom_through_gate_is_the_origins(browser, origins, name, encoding, consent):
    """accept_all, no JavaScript: the same tree, node for node. accept_all with JavaScript: the same
    tree once vendor elements are set aside on both sides (their loaders insert them before the first
    script, which is gate's now). undecided: gate strips the vendors' tags, and a removed element can
    change where the parser closes <head> (an <img> in a <noscript> in <head> opens <body>), so on
    both sides the vendors' elements are set aside and the rest must come in the same order, text and
    attributes equal."""
    origin, gate = origins[encoding]
    javascript = consent.endswith("+js")
    key = (name, encoding, javascript)
    if key not in _direct:
        _direct[key] = snapshot(browser, f"{origin}/{encoding}/{name}", javascript)
    direct = _direct[key]
    cookie = None
    if consent.startswith("accept_all"):
        # everything kept: every purpose, and personal data from forms for every recipient (apply.html)
        cookie = ConsentCodec([KEY]).dumps(decide(REGISTRY, REGISTRY.refusable, personal_data=REGISTRY.vendors))
    page_url = f"{gate}/{encoding}/{name}"
    gated = snapshot(browser, page_url, javascript, cookie)
    assert {k: gated[k] for k in ("charset", "mode", "title", "doctype")} == {
        k: direct[k] for k in ("charset", "mode", "title", "doctype")
    }
    a, b = direct["root"], gated["root"]
    if consent != "accept_all":
        a, b = without_vendors(a, page_url), without_vendors(b, page_url)
    a_tokens, b_tokens = tokens(a, tree=consent != "undecided"), tokens(b, tree=consent != "undecided")
    problems = differences(a_tokens, b_tokens)
    assert problems == [], f"{len(a_tokens)} nodes from the origin, {len(b_tokens)} through gate:\n" + "\n".join(
        problems[:5]
    )
