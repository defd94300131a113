"""Pages compressed for visitors (issue 12): a rewritten page leaves gate as br, zstd or gzip, by the
visitor's Accept-Encoding, streaming, and decodes to exactly the page gate sends uncompressed.

Real uvicorn origin and real gate on 127.0.0.1, read with a raw socket (what a browser receives: status,
headers, chunked framing, every byte); each coding decoded by two decoders gate does not use to encode:
Python's module (gzip, brotli, zstandard) and Debian's command-line tool (gzip -d, brotli -d, zstd -d).
"""

from __future__ import annotations

import gzip
import re
import socket
import subprocess
import threading
import zlib
from collections.abc import Iterator
from dataclasses import replace

import brotli
import pytest
import zstandard
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gate import encoders
from gate.app import create_app
from gate.demo import bench_page

from .conftest import gate_settings, serve

PAGE = bench_page("100k", "sjis")  # a Japanese page, in Shift_JIS: the 100 KB case of the issue
IMAGE = bytes(range(256)) * 800
FIRST = b"<!doctype html><html><head><meta charset=utf-8><title>first</title></head><body>\n" + (
    b"<p>the first part of the page, sent at once</p>\n" * 60
)
REST_TEXT = b"<p id=rest>the rest, held back by the origin</p>"
REST = REST_TEXT + b"</body></html>\n"
TOKEN = re.compile(rb'name="gate-token" content="[^"]*"')

PYTHON_DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}
CLI_DECODE = {"gzip": ["gzip", "-d", "-c"], "br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}


class Origin:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.app = Starlette(
            routes=[Route("/jobs", self.page), Route("/photo.jpg", self.image), Route("/held", self.held)]
        )

    async def page(self, request: Request) -> Response:
        return Response(
            PAGE, media_type="text/html; charset=shift_jis", headers={"etag": '"v1"', "vary": "Accept-Language"}
        )

    async def image(self, request: Request) -> Response:
        return Response(IMAGE, media_type="image/jpeg", headers={"etag": '"img"'})

    async def held(self, request: Request) -> StreamingResponse:
        """The first part of a page at once, the rest only when the test releases it."""
        import anyio

        async def body() -> Iterator[bytes]:
            yield FIRST
            with anyio.fail_after(20):
                while not self.release.is_set():
                    await anyio.sleep(0.01)
            yield REST

        return StreamingResponse(body(), media_type="text/html; charset=utf-8")


@pytest.fixture(scope="module")
def origin() -> Origin:
    return Origin()


@pytest.fixture(scope="module")
def gate(origin: Origin) -> Iterator[str]:
    with serve(origin.app) as origin_url, serve(create_app(gate_settings(origin_url))) as url:
        yield url


@pytest.fixture(scope="module")
def gate_off(origin: Origin) -> Iterator[str]:
    with serve(origin.app) as origin_url:
        conf = gate_settings(origin_url)
        conf = replace(conf, sites=tuple(replace(s, compress="off") for s in conf.sites))
        with serve(create_app(conf)) as url:
            yield url


# -- a raw HTTP/1.1 client --------------------------------------------------------------------------
def _connect(base: str, path: str, accept_encoding: str | None) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=20)
    ae = f"Accept-Encoding: {accept_encoding}\r\n" if accept_encoding is not None else ""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{ae}Connection: close\r\n\r\n".encode())
    return s


def _split(raw: bytes) -> tuple[dict[str, str], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == "200", lines[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = (
            headers[k.strip().lower()] + ", " if k.strip().lower() in headers else ""
        ) + v.strip()
    return headers, rest


def _dechunk(rest: bytes) -> tuple[bytes, bool]:
    """The chunked body's bytes so far, and whether its last chunk came."""
    body = bytearray()
    while True:
        size_line, sep, after = rest.partition(b"\r\n")
        if not sep:
            return bytes(body), False
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(body), True
        body += after[:size]
        if len(after) < size + 2:
            return bytes(body), False
        rest = after[size + 2 :]


def fetch(base: str, path: str, accept_encoding: str | None) -> tuple[dict[str, str], bytes]:
    s = _connect(base, path, accept_encoding)
    raw = bytearray()
    while data := s.recv(65536):
        raw += data
    s.close()
    headers, rest = _split(bytes(raw))
    if "content-length" in headers:
        return headers, rest[: int(headers["content-length"])]
    assert headers.get("transfer-encoding") == "chunked", headers
    body, whole = _dechunk(rest)
    assert whole, "the body ended without its last chunk"
    return headers, body


def same_page(a: bytes) -> bytes:
    """The page without its per-request token (every response carries a fresh one)."""
    return TOKEN.sub(b'name="gate-token" content=""', a)


# -- choosing the coding ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        (None, None),
        ("", None),
        ("gzip, deflate, br, zstd", "br"),  # Chromium's: the smallest of the codings gate writes
        ("gzip, deflate", "gzip"),
        ("x-gzip", "gzip"),
        ("zstd", "zstd"),
        ("br;q=0.5, gzip", "gzip"),
        ("gzip;q=0.2, zstd;q=0.9, br;q=0.5", "zstd"),
        ("*", "br"),
        ("br;q=0, *", "zstd"),
        ("*;q=0", None),
        ("identity", None),
        ("gzip;q=0", None),
        ("gzip;q=0.5, identity", None),  # identity asked for more than gzip
        ("deflate", None),  # gate does not write deflate
        ("GZIP; Q=1.0", "gzip"),
        ("br;q=bad, gzip", "gzip"),
    ],
)
def test_the_coding_follows_accept_encoding(accept_encoding: str | None, expected: str | None) -> None:
    assert encoders.choose(accept_encoding) == expected


# -- through gate ----------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_coding_decodes_to_the_uncompressed_page(gate: str, coding: str, tmp_path) -> None:
    _, plain = fetch(gate, "/jobs", "identity")
    headers, wire = fetch(gate, "/jobs", coding)
    assert headers.get("content-encoding") == coding
    assert "content-length" not in headers  # streamed: its length is known only at the end
    assert "etag" not in headers  # the origin's validator named the origin's bytes, not these
    vary = [v.strip().lower() for v in headers["vary"].split(",")]
    assert "accept-encoding" in vary and "accept-language" in vary and "cookie" in vary
    assert len(wire) < len(plain) / 4  # compressed: the Japanese page is about 8 KB of 110 KB
    assert same_page(PYTHON_DECODE[coding](wire)) == same_page(plain)
    (tmp_path / "page").write_bytes(wire)
    cli = subprocess.run([*CLI_DECODE[coding], str(tmp_path / "page")], capture_output=True, timeout=30, check=True)
    assert same_page(cli.stdout) == same_page(plain)
    assert b'id="gate-root"' in plain  # the page as gate sends it: banner included
    headers, body = fetch(gate, "/photo.jpg", coding)  # not a page: the origin's bytes, untouched
    assert "content-encoding" not in headers and body == IMAGE
    assert headers.get("content-length") == str(len(IMAGE)) and headers.get("etag") == '"img"'


def test_without_accept_encoding_the_page_is_identity_and_says_it_varies(gate: str) -> None:
    headers, body = fetch(gate, "/jobs", None)
    assert "content-encoding" not in headers
    assert "accept-encoding" in headers["vary"].lower()  # a cache must not hand this to a visitor asking br
    assert b"</html>" in body


def test_compress_off_sends_identity(gate_off: str) -> None:
    headers, body = fetch(gate_off, "/jobs", "gzip, deflate, br, zstd")
    assert "content-encoding" not in headers
    assert "accept-encoding" not in headers["vary"].lower()
    assert b"</html>" in body


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_the_first_part_reaches_the_visitor_before_the_origin_sends_the_rest(
    gate: str, origin: Origin, coding: str
) -> None:
    """Each chunk is flushed: what the origin sent so far is readable by the visitor while the origin
    still holds the rest of the page."""
    origin.release.clear()
    s = _connect(gate, "/held", coding)
    raw, seen = bytearray(), b""
    try:
        while b"the first part of the page" not in seen:
            data = s.recv(65536)
            assert data, "gate closed the connection before the first part"
            raw += data
            if b"\r\n\r\n" in raw:
                headers, rest = _split(bytes(raw))
                assert headers["content-encoding"] == coding
                body, whole = _dechunk(rest)
                assert not whole
                seen = decode_so_far(coding, body)
        assert not origin.release.is_set() and REST_TEXT not in seen
        origin.release.set()
        while data := s.recv(65536):
            raw += data
    finally:
        origin.release.set()
        s.close()
    _, rest = _split(bytes(raw))
    body, whole = _dechunk(rest)
    assert whole and REST_TEXT in PYTHON_DECODE[coding](body)


def decode_so_far(coding: str, body: bytes) -> bytes:
    """What a streaming decoder gives for the first bytes of a coded body (no end needed)."""
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)
    if coding == "br":
        return _brotli_so_far(body)
    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


def test_chromium_renders_the_compressed_page_as_the_uncompressed_one(browser, gate: str, gate_off: str) -> None:
    """The same DOM whether the page came as br (Chromium asks for br first) or identity."""
    doms, codings = [], []
    for base in (gate, gate_off):
        context = browser.new_context()
        try:
            page = context.new_page()
            response = page.goto(f"{base}/jobs", wait_until="load")
            assert response is not None and response.status == 200
            codings.append(response.headers.get("content-encoding"))
            doms.append(page.evaluate("document.documentElement.outerHTML").replace(base, "GATE"))
        finally:
            context.close()
    assert codings == ["br", None]
    token = re.compile(r'name="gate-token" content="[^"]*"')
    assert token.sub("", doms[0]) == token.sub("", doms[1])
    assert "求人" in doms[0]


def _brotli_so_far(body: bytes) -> bytes:
    """brotli's streaming decoder hands out at most 32 KB a call: ask until it has nothing more."""
    d = brotli.Decompressor()
    out = [d.process(body)]
    while more := d.process(b""):
        out.append(more)
    return b"".join(out)
