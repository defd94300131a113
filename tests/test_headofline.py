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
from typing import Any

import anyio
import pytest
import respx

from gate.app import create_app
from gate.demo import bench_page

from .conftest import CLIENT_IP, gate_settings

ORIGIN = "http://origin.test"
_head, _, _rest = bench_page("1m").partition(b"<body")
_body, _, _tail = _rest.partition(b"</body>")
BIG = _head + b"<body" + _body * 8 + b"</body>" + _tail  # about 8 MB
SMALL = b'{"jobs": [' + b",".join(b"%d" % i for i in range(250)) + b"]}"
# The most of a large page that may go out between two turns of anyone else: two 16 KB pieces, and what
# the rewriter held back from the one before.
TURN_BYTES = 48 * 1024

pytestmark = pytest.mark.anyio


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
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": (CLIENT_IP, 50000),
            "server": ("gate.test", 80),
            "state": {},
        }
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


async def test_a_large_page_lets_the_loop_turn_every_piece(origin) -> None:
    """After its first slice, an 8 MB page never sends more than two pieces (32 KB) between two turns
    of anyone else: however large one chunk from the origin decodes to."""
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
    assert len(per_turn) > len(BIG) // TURN_BYTES  # so many turns: the page was never sent in a few
    assert max(per_turn[1:]) <= TURN_BYTES, sorted(per_turn)[-5:]


async def test_a_small_request_waits_behind_a_few_pieces_of_a_large_page(origin) -> None:
    """A 1 KB JSON answer asked while an 8 MB page streams: for each loop turn the small request needs
    (counted when it runs alone), the page sends at most two pieces before the answer is complete; and
    every small answer is complete long before the page is."""
    app = create_app(gate_settings(ORIGIN))
    turns = Turns()
    async with app.router.lifespan_context(app), anyio.create_task_group() as tg:
        tg.start_soon(turns.run)
        alone = Exchange(app, "/small.json", turns)
        before = turns.count
        await alone.run()
        needs = turns.count - before  # the turns a small request takes, with nothing else on the loop
        assert alone.status == 200 and bytes(alone.body) == SMALL

        page = Exchange(app, "/big.html", turns)
        tg.start_soon(page.run)
        await page.started.wait()
        waits = []  # bytes of the page sent while each small request was under way
        for _ in range(5):
            small = Exchange(app, "/small.json", turns)
            sent_before = len(page.body)
            await small.run()
            waits.append(len(page.body) - sent_before)
            assert small.status == 200 and bytes(small.body) == SMALL
        assert not page.done.is_set()  # the small answers came while the page was streaming
        await page.done.wait()
        tg.cancel_scope.cancel()
    assert page.status == 200 and page.body.endswith(b"</html>\n")
    assert max(waits) <= (needs + 1) * TURN_BYTES, (needs, waits)
