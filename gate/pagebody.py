"""The page body transform: upstream bytes in, the gated page out (decoder -> charset sniff ->
transcoder when the page is not ASCII-compatible -> rewriter)."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

import anyio

from . import charset
from .decoders import Decoder
from .encoders import Encoder
from .logs import Stopwatch
from .rewrite import Outcome, PagePlan, PageRewriter
from .transform import ByteTransform, Joined

log = logging.getLogger("gate.proxy")  # the request path's logger, as before the split


class PageBody(Joined):
    """Upstream bytes in, the gated page out: undo Content-Encoding, sniff the charset on the first
    bytes (at most 1024 are held back), rewrite in the page's own encoding. A ``transform.Pieces``:
    the request path reads ``pieces``/``end_pieces`` (bounded, however large the decoded page)."""

    def __init__(self, plan: PagePlan, content_type: str | None, decoder: Decoder) -> None:
        self.plan, self.content_type, self.decoder = plan, content_type, decoder
        self.need = charset.bytes_needed(content_type)
        self.head = b""
        self.rewriter: PageRewriter | None = None
        self.stream: ByteTransform | None = None
        self.sniffed: charset.Sniffed | None = None
        self.stopwatch = Stopwatch()  # time spent rewriting, for the access line

    @property
    def outcome(self) -> Outcome | None:
        return self.rewriter.outcome if self.rewriter else None

    def pieces(self, data: bytes) -> Iterator[bytes]:
        for piece in self.decoder.pieces(data):
            yield from self._page(piece)

    def end_pieces(self) -> Iterator[bytes]:
        for piece in self.decoder.end_pieces():
            yield from self._page(piece)
        if self.stream is None:
            if not self.head:  # no byte at all: an empty body stays empty, no banner on nothing
                return
            yield from self._page(b"", force=True)
        assert self.stream is not None
        with self.stopwatch:
            tail = self.stream.close()
        if tail:
            yield tail

    def _page(self, piece: bytes, force: bool = False) -> Iterator[bytes]:
        if self.stream is None:
            self.head += piece
            if len(self.head) < self.need and not force:
                return
            piece, self.head = self.head, b""
            self._open(piece)
        assert self.stream is not None
        with self.stopwatch:
            out = self.stream.feed(piece)
        if out:
            yield out

    def _open(self, head: bytes) -> None:
        self.sniffed = charset.detect(self.content_type, head)
        codec = self.sniffed.codec
        if self.sniffed.unknown_label:
            log.info("unknown charset %r, read as %s", self.sniffed.unknown_label, codec)
        if charset.is_ascii_compatible(codec):
            self.rewriter = self.stream = PageRewriter(self.plan, codec)
        else:
            self.rewriter = PageRewriter(self.plan, "utf-8")
            self.stream = charset.Transcoder(self.rewriter, codec)


# A page's turns on the event loop, counted in its own time on the loop (not the time it waits for the
# origin): the first as long as SLICE_SECONDS, so that a page that fits (the 100 KB job list) never
# gives the loop up, however its origin paces it; each later one NEXT_SLICE_PIECES pieces of the decoded
# page (decoders.PIECE bytes each; an uncompressed page: IDENTITY_PIECE) or NEXT_SLICE_SECONDS,
# whichever comes first, so that a request arriving meanwhile waits behind a small piece of a large
# page, not behind large slices of it (bench/headofline.py). (Wall time: a CPU clock costs 6-14 us a
# call here, a piece about 40.)
SLICE_SECONDS = 0.0005
NEXT_SLICE_PIECES = 1
NEXT_SLICE_SECONDS = 0.0002
# What a large page made goes out (compressed: flushed) once this much of it is held, and at the end of
# every chunk from the origin: a send and a flush per piece cost more than the turn itself.
SEND_BYTES = 128 * 1024


async def page_chunks(
    chunks: AsyncIterator[bytes],
    page: PageBody,
    encoder: Encoder | None = None,
    origin_done: Callable[[], bool] = lambda: False,
) -> AsyncIterator[bytes]:
    """The gated page as it streams, compressed for the visitor when ``encoder`` is given (what the
    rewriter met is ``page.outcome`` once it has ended). What a chunk from the origin makes goes out
    (flushed) by the end of that chunk, so the page streams as it comes. A chunk of a compressed page
    can decode to megabytes: the work is cut into turns (``_Turns``), and between two the loop serves
    other requests.

    Once the origin has sent its last byte (``origin_done``: it can tell when the origin said how much
    it would send) or the chunks have ended, what is left is in memory: each output then waits for the
    next, and the last goes out as ``Last``, with the end of the response (one write to the visitor, one
    wake-up of its reader, where there were two or three)."""
    turns = _Turns(encoder)
    held = b""  # made once the origin can send no more: each output waits for the next, the last is Last
    async with contextlib.aclosing(_sources(chunks, page, origin_done)) as sources:
        async for pieces, settled in sources:
            done = False
            while not done:
                out, done = await turns.take(pieces)
                if out and not settled:  # nothing is held before the origin is done
                    yield out
                elif out:
                    if held:
                        yield held
                    held = out
    yield Last(held + encoder.close() if encoder is not None else held)


async def _sources(
    chunks: AsyncIterator[bytes], page: PageBody, origin_done: Callable[[], bool]
) -> AsyncGenerator[tuple[Iterator[bytes], bool]]:
    """The page's pieces for each chunk from the origin, then its end, each with whether the origin can
    send no more by then."""
    async for chunk in chunks:
        yield page.pieces(chunk), origin_done()
    yield page.end_pieces(), True


class Last(bytes):
    """A response's last bytes (possibly none): sent with the end of the response."""


class _Turns:
    """Takes a page's pieces a turn at a time: gives the loop up (``anyio.sleep(0)``) before going on
    once the page has had its turn; holds what the turns made until there is SEND_BYTES of it or the
    pieces end."""

    def __init__(self, encoder: Encoder | None) -> None:
        self.encoder = encoder
        self.spent = 0.0  # the page's own time on the loop in this turn
        self.length = SLICE_SECONDS  # of this turn
        self.budget = math.inf  # pieces this turn may still take; the first turn is bounded by time only
        self.due = False  # the turn is over: give the loop up before the next piece
        self.held: list[bytes] = []  # made, not sent yet (compressed, not flushed yet)
        self.held_bytes = 0  # of the page before compression

    async def take(self, pieces: Iterator[bytes]) -> tuple[bytes, bool]:
        """What goes out now (possibly b"") and whether ``pieces`` has ended."""
        if self.due:
            await anyio.sleep(0)
            self.spent, self.length, self.budget, self.due = 0.0, NEXT_SLICE_SECONDS, NEXT_SLICE_PIECES, False
        return self._run(pieces)

    def _run(self, pieces: Iterator[bytes]) -> tuple[bytes, bool]:
        start = time.perf_counter()
        made, done = [], True
        for piece in pieces:
            made.append(piece)
            self.held_bytes += len(piece)
            self.budget -= 1
            if self.budget <= 0 or self.spent + time.perf_counter() - start > self.length:
                self.due, done = True, False
                break
            if self.held_bytes >= SEND_BYTES:
                done = False
                break
        send = done or self.held_bytes >= SEND_BYTES
        if made or send:
            data = b"".join(made)
            self.held.append(self.encoder.feed(data, flush=send) if self.encoder is not None else data)
        self.spent += time.perf_counter() - start
        if not send:
            return b"", done
        out, self.held, self.held_bytes = b"".join(self.held), [], 0
        return out, done
