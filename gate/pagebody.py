"""The page body transform: upstream bytes in, the gated page out (decoder -> charset sniff ->
transcoder when the page is not ASCII-compatible -> rewriter)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

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


SLICE_SECONDS = 0.0005  # the longest a page holds the event loop before other requests get a turn


async def page_chunks(
    chunks: AsyncIterator[bytes],
    page: PageBody,
    finished: Callable[[Outcome | None], None],
    encoder: Encoder | None = None,
) -> AsyncIterator[bytes]:
    """The gated page as it streams, compressed for the visitor when ``encoder`` is given (each piece
    flushed); ``finished(outcome)`` once its last byte has gone out. A chunk of a compressed page can
    decode to megabytes: between its pieces, once SLICE_SECONDS have gone by, the loop serves other
    requests (bench/headofline.py)."""
    turn = time.perf_counter()
    async for chunk in chunks:
        for out in page.pieces(chunk):
            yield encoder.feed(out) if encoder is not None else out
            if time.perf_counter() - turn > SLICE_SECONDS:
                await anyio.sleep(0)
                turn = time.perf_counter()
    for out in page.end_pieces():
        yield encoder.feed(out) if encoder is not None else out
    if encoder is not None:
        yield encoder.close()
    finished(page.outcome)
