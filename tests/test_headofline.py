"""No page blocks another (issue 12): while a multi-MB page streams through gate, a small request on the
same worker waits behind a few small pieces of it, not behind large slices of it.

gate's app runs on one event loop with its origin in memory (respx), and a task that counts the loop's
turns stands for every other request; what the tests count is turns and bytes of the page, never time
(this machine is shared, and a slow moment must not fail a test). The origin sends the page gzipped in
one body chunk, the worst case: that one chunk decodes to megabytes.

bench/headofline.py measures the same with real servers and a clock.
"""

from __future__ import annotations

import gzip
import re
from typing import Any

import anyio
import brotli
import pytest
import respx
import zstandard

from gate import pagebody
from gate.app import create_app
from gate.demo import bench_page
from gate.shares import Shares

from .conftest import CLIENT_IP, gate_settings, http_scope

ORIGIN = "http://origin.test"
_head, _, _rest = bench_page("1m").partition(b"<body")
_body, _, _tail = _rest.partition(b"</body>")
BIG = _head + b"<body" + _body * 8 + b"</body>" + _tail  # about 8 MB
SMALL = b'{"jobs": [' + b",".join(b"%d" % i for i in range(250)) + b"]}"
# What a large page may send per turn of anyone else: a 16 KB piece and what the rewriter held back from
# the piece before; TURN_BYTES allows for a turn's piece coming out with the next one's send.
PIECE_BYTES = 20 * 1024
TURN_BYTES = 2 * PIECE_BYTES
SMALL_REQUESTS = 20

pytestmark = pytest.mark.anyio


def untokened(page: bytes) -> bytes:
    """The page without its per-request token (every response carries a fresh one)."""
    return re.sub(rb'name="gate-token" content="[^"]*"', b"", page)


def zstd_decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


class Turns:
    """Counts the event loop's turns: a task that yields and counts, for as long as it runs."""

    def __init__(self) -> None:
        self.count = 0

    async def run(self) -> None:
        while True:
            await anyio.sleep(0)
            self.count += 1


class Exchange:
    """One request through the ASGI app, its body messages recorded with the turn each went out in."""

    def __init__(self, app: Any, path: str, turns: Turns, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.app, self.path, self.turns = app, path, turns
        self.headers = [(b"host", b"gate.test"), *(headers or [])]
        self.status = 0
        self.sent: list[tuple[int, int]] = []  # (turn, bytes) per body message
        self.body = bytearray()
        self.started = anyio.Event()  # the first body bytes went out
        self.done = anyio.Event()

    async def run(self) -> None:
        scope = http_scope(self.path, self.headers)
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await anyio.sleep_forever()  # the visitor stays
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body:
                    self.sent.append((self.turns.count, len(body)))
                    self.body += body
                    self.started.set()

        await self.app(scope, receive, send)
        self.done.set()

    def bytes_by_turn(self) -> list[int]:
        """The page's bytes per turn of the loop, in order."""
        out: dict[int, int] = {}
        for turn, n in self.sent:
            out[turn] = out.get(turn, 0) + n
        return list(out.values())


@pytest.fixture
def origin():
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(host="origin.test")
        route.mock(
            side_effect=lambda request: (
                respx.MockResponse(
                    200,
                    headers={"content-type": "text/html; charset=utf-8", "content-encoding": "gzip"},
                    content=gzip.compress(BIG, 6),
                )
                if request.url.path == "/big.html"
                else respx.MockResponse(200, headers={"content-type": "application/json"}, content=SMALL)
            )
        )
        yield


async def test_small_requests_are_answered_early_while_a_large_page_streams(origin) -> None:
    """Twenty 1 KB JSON answers asked one after the other while an 8 MB page streams: all are complete
    while the page has advanced by a few pieces per answer (for each loop turn a small request needs,
    counted when it runs alone, the page takes about one 16 KB piece), long before the page ends."""
    app = create_app(gate_settings(ORIGIN))
    turns = Turns()
    async with app.router.lifespan_context(app), anyio.create_task_group() as tg:
        tg.start_soon(turns.run)
        await anyio.sleep(0)  # the counter runs
        alone = Exchange(app, "/small.json", turns)
        before = turns.count
        await alone.run()
        needs = turns.count - before  # the turns a small request takes, with nothing else on the loop
        assert alone.status == 200 and bytes(alone.body) == SMALL

        page = Exchange(app, "/big.html", turns)
        tg.start_soon(page.run)
        await page.started.wait()
        sent_before = len(page.body)
        for _ in range(SMALL_REQUESTS):
            small = Exchange(app, "/small.json", turns)
            await small.run()
            assert small.status == 200 and bytes(small.body) == SMALL
        advanced = len(page.body) - sent_before  # of the page, while the small requests were answered
        assert not page.done.is_set()
        await page.done.wait()
        tg.cancel_scope.cancel()
    assert page.status == 200 and page.body.endswith(b"</html>\n")
    # The page goes out in sends of up to 128 KB (what it made meanwhile): one of slack.
    assert advanced <= SMALL_REQUESTS * (needs + 1) * TURN_BYTES + 128 * 1024, (needs, advanced)


async def test_a_free_share_of_the_pool_costs_no_loop_turn() -> None:
    """A request's share of the upstream pool, when free, is taken without giving the loop up: every turn
    a request gives up, it waits behind each page streaming on the same worker."""
    shares = Shares(gate_settings(ORIGIN))
    turns = Turns()
    async with anyio.create_task_group() as tg:
        tg.start_soon(turns.run)
        await anyio.sleep(0)  # the counter runs
        before = turns.count
        async with shares.claim(CLIENT_IP, "gate.test /small.json"):
            claimed = turns.count - before
        tg.cancel_scope.cancel()
    assert claimed == 0


async def test_a_large_page_takes_one_piece_per_turn(origin, monkeypatch) -> None:
    """After its first turn, an 8 MB page takes no more than a 16 KB piece between two turns of anyone
    else, however large one chunk from the origin decodes to. (Each turn's output sent at once, to see
    it.)"""
    monkeypatch.setattr(pagebody, "SEND_BYTES", 1, raising=False)
    app = create_app(gate_settings(ORIGIN))
    turns = Turns()
    async with app.router.lifespan_context(app), anyio.create_task_group() as tg:
        tg.start_soon(turns.run)
        page = Exchange(app, "/big.html", turns)
        await page.run()
        tg.cancel_scope.cancel()
    assert page.status == 200
    assert page.body.endswith(b"</html>\n") and len(page.body) > len(BIG)  # whole, and gated (injected)
    per_turn = page.bytes_by_turn()
    assert max(per_turn[1:]) <= PIECE_BYTES, sorted(per_turn)[-5:]


@pytest.mark.parametrize(
    ("coding", "decompress"),
    [("br", brotli.decompress), ("gzip", gzip.decompress), ("zstd", zstd_decompress)],
)
async def test_a_large_page_compressed_is_the_page_sent_uncompressed(origin, coding, decompress) -> None:
    """The 8 MB page compressed for the visitor (flushed now and then, not every piece) decodes to
    exactly the page gate sends uncompressed."""
    app = create_app(gate_settings(ORIGIN))
    turns = Turns()
    async with app.router.lifespan_context(app):
        plain = Exchange(app, "/big.html", turns)
        await plain.run()
        packed = Exchange(app, "/big.html", turns, [(b"accept-encoding", coding.encode())])
        await packed.run()
    assert plain.status == packed.status == 200
    assert len(packed.body) < len(plain.body) // 4
    assert untokened(decompress(bytes(packed.body))) == untokened(bytes(plain.body))
