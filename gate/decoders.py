"""Content-Encoding undone as the body streams: gzip (x-gzip; one member or several), deflate (zlib-
wrapped, or raw as some servers send it), br, identity, and lists of them such as ``gzip, br``.

Every decoder is a ``transform.Pieces``: ``pieces(bytes)`` and ``end_pieces()`` each return an
iterator of decoded pieces of at most about PIECE bytes, and ``feed``/``close`` (the one byte-transform
protocol, gate.transform) return those pieces joined. Pieces rather than one ``bytes`` on the page
path: a few KB of compressed input can stand for gigabytes (a bomb), and whoever reads the pieces
decides how many it holds. Read each iterator to its end before the next call; use ``feed``/``close``
only where the output is capped (``max_bytes``) or known to be small.

Hostile or broken input raises IncompleteBody, never zlib.error or brotli.error: ``corrupt`` for bytes
that are not the coding (or anything but another gzip member after the end), ``truncated`` from close()
when the stream has not reached its end. A body of zero bytes is an empty body, whatever its coding.
``Capped`` raises PageTooLarge once more than ``max_bytes`` have come out.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import brotli  # type: ignore[import-untyped]  # no stubs; its errors stay in here (IncompleteBody)

from .errors import IncompleteBody, PageTooLarge
from .transform import Joined, Pieces

DECODABLE = frozenset({"gzip", "x-gzip", "deflate", "br", "identity"})
PIECE = 16 * 1024  # a piece: a small step of a page's work (gate.pagebody cuts turns in pieces)
# An uncompressed page's piece: as large as one read from the origin (httpcore reads 64 KiB), so that a
# chunk goes through the rewriter whole. Cutting it in PIECE-sized pieces bounds nothing (the chunk is
# in memory already) and cost 0.09 ms per 100 KB page (bench/inproc.py --variant identity-16k).
IDENTITY_PIECE = 64 * 1024


Decoder = Pieces  # what decoder_for returns


class Identity(Joined):
    def pieces(self, data: bytes) -> Iterator[bytes]:
        if len(data) <= IDENTITY_PIECE:
            if data:
                yield data
            return
        for start in range(0, len(data), IDENTITY_PIECE):
            yield data[start : start + IDENTITY_PIECE]

    def end_pieces(self) -> Iterator[bytes]:
        return iter(())


class ZlibDecoder(Joined):
    """gzip, or deflate: zlib-wrapped (RFC 9110) or raw (what some servers send), told apart by the
    first two bytes."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.gzip = coding in ("gzip", "x-gzip")
        self._d = self._member() if self.gzip else None
        self._head = b""  # deflate: the first bytes, until there are two to look at
        self._seen = False

    def _member(self) -> zlib._Decompress:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def pieces(self, data: bytes) -> Iterator[bytes]:
        self._seen = self._seen or bool(data)
        more = False  # zlib may hold output back when a piece filled up
        while data or more:
            if self._d is None:
                self._head += data
                if len(self._head) < 2:
                    return
                data, self._head = self._head, b""
                self._d = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS)
            if self._d.eof:
                data, more = self._after_end(data), False
                continue
            try:
                out = self._d.decompress(data, PIECE)
            except zlib.error as e:
                raise IncompleteBody("corrupt", f"{self.coding}: {e}") from None
            if out:
                yield out
            more = len(out) == PIECE
            data = self._d.unused_data if self._d.eof else self._d.unconsumed_tail

    def _after_end(self, data: bytes) -> bytes:
        """What follows the end of a stream: another gzip member (NUL padding between members skipped,
        as gzip(1) and Python's gzip do), nothing, or a corrupt body."""
        rest = data.lstrip(b"\0")
        if rest and not self.gzip:
            raise IncompleteBody("corrupt", f"{self.coding}: {len(rest)} bytes after the end of the stream")
        if rest:
            self._d = self._member()
        return rest

    def end_pieces(self) -> Iterator[bytes]:
        ended = self._d is not None and self._d.eof
        if self._seen and not ended:
            raise IncompleteBody("truncated", f"{self.coding}: the stream ended before its end")
        return iter(())


def _zlib_header(head: bytes) -> bool:
    """A zlib header (RFC 1950): deflate, a window of at most 32 KiB, and a valid check value."""
    return head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] << 8 | head[1]) % 31 == 0


class BrotliDecoder(Joined):
    """br, through the brotli module's streaming decompressor (brotli >= 1.2 for its output limit).

    ``process(data, output_buffer_limit=n)`` stops once its output reaches ``n`` bytes, and then keeps
    the rest both as unconsumed input (what can_accept_more_data() reports) and as output already
    decoded inside the decoder (what it does not report). So a piece that reached the limit means
    "call process(b'') again", whatever can_accept_more_data() says; a shorter piece means the decoder
    wanted more input (or finished)."""

    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self._seen = False

    def pieces(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._seen = True
        try:
            out = self._d.process(data, output_buffer_limit=PIECE)
            while True:
                if out:
                    yield out
                if len(out) < PIECE and self._d.can_accept_more_data():
                    return
                out = self._d.process(b"", output_buffer_limit=PIECE)
        except brotli.error as e:
            raise IncompleteBody("corrupt", f"br: {e}") from None

    def end_pieces(self) -> Iterator[bytes]:
        if self._seen and not self._d.is_finished():
            raise IncompleteBody("truncated", "br: the stream ended before its end")
        return iter(())


class ChainDecoder(Joined):
    """Content-Encoding lists codings in the order applied; undo them last first."""

    def __init__(self, decoders: list[Decoder]) -> None:
        self.decoders = decoders

    def pieces(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, iter((data,)), final=False)

    def end_pieces(self) -> Iterator[bytes]:
        return self._through(0, iter(()), final=True)

    def _through(self, i: int, pieces: Iterator[bytes], final: bool) -> Iterator[bytes]:
        """Lazily, so a bomb in any layer still comes out in bounded pieces."""
        if i == len(self.decoders):
            yield from pieces
            return
        d = self.decoders[i]

        def produced() -> Iterator[bytes]:
            for p in pieces:
                yield from d.pieces(p)
            if final:
                yield from d.end_pieces()

        yield from self._through(i + 1, produced(), final)


class Capped(Joined):
    """A decoder that raises PageTooLarge once more than ``max_bytes`` have come out of it."""

    def __init__(self, decoder: Decoder, max_bytes: int) -> None:
        self.decoder, self.max_bytes, self.total = decoder, max_bytes, 0

    def pieces(self, data: bytes) -> Iterator[bytes]:
        return self._counted(self.decoder.pieces(data))

    def end_pieces(self) -> Iterator[bytes]:
        return self._counted(self.decoder.end_pieces())

    def _counted(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self.total += len(piece)
            if self.total > self.max_bytes:
                raise PageTooLarge(self.max_bytes)
            yield piece


def decoder_for(content_encoding: str | None, max_bytes: int | None = None) -> Decoder | None:
    """A decoder for the response's Content-Encoding (capped at ``max_bytes`` of output when given);
    None when a coding is one we cannot undo."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    decoders: list[Decoder] = []
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding not in DECODABLE:
            return None
        decoders.append(BrotliDecoder() if coding == "br" else ZlibDecoder(coding))
    decoder: Decoder = decoders[0] if len(decoders) == 1 else ChainDecoder(decoders) if decoders else Identity()
    return decoder if max_bytes is None else Capped(decoder, max_bytes)
