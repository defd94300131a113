"""Content-Encoding for the visitor: a rewritten page compressed as it streams (br, zstd or gzip), chosen
by the visitor's Accept-Encoding.

gate undoes the origin's coding to rewrite a page (gate.decoders), so without this every page left gate
uncompressed: a 100 KB Japanese page where the origin sent 20 KB of gzip. Every encoder is a plain
object with ``feed(bytes) -> bytes`` and ``close() -> bytes``; ``feed`` flushes what it was given (a
sync flush), so each chunk the rewriter hands on reaches the visitor at once, and the time to first
byte stays what it was uncompressed; ``feed(data, flush=False)`` compresses without flushing, for a
caller that feeds a page in many small pieces and flushes now and then (a flush costs CPU and a few
bytes). ``close`` ends the stream.

The levels are chosen by measurement (bench/compress.py, bench/README.md): the most compression whose
CPU per page stays well under the rewrite's own. zstd is offered only when the ``zstandard`` module is
installed (``pip install gate[zstd]``).

Negotiation follows RFC 9110 §12.5.3: ``q`` values (``q=0``: not acceptable), ``*`` for any coding not
named, ``identity`` (sent instead only when the visitor weighs it above every coding gate offers),
``x-gzip`` as gzip. Among the codings with the highest ``q``, gate's preference breaks the tie
(``PREFERENCE``). No Accept-Encoding header, or no coding acceptable: identity.
"""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import Protocol

import brotli  # type: ignore[import-untyped]

zstandard: ModuleType | None
try:  # optional: current browsers ask for it, but gate runs without it
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None

GZIP_LEVEL = 6
BROTLI_QUALITY = 4
ZSTD_LEVEL = 3
# Ties between equally acceptable codings: the smallest output first (bench/compress.py).
PREFERENCE: tuple[str, ...] = ("br", "zstd", "gzip") if zstandard is not None else ("br", "gzip")


class Encoder(Protocol):
    coding: str

    def feed(self, data: bytes, flush: bool = True) -> bytes: ...

    def close(self) -> bytes: ...


class _Streaming:
    """What every coding shares: ``feed`` compresses, then flushes when asked and when something was fed
    since the last flush; a subclass names its coding and its compressor's three calls."""

    coding = ""
    _unflushed = False

    def _compress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def _flush(self) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError

    def feed(self, data: bytes, flush: bool = True) -> bytes:
        out = self._compress(data) if data else b""
        self._unflushed = self._unflushed or bool(data)
        if flush and self._unflushed:
            self._unflushed = False
            out += self._flush()
        return out


class GzipEncoder(_Streaming):
    coding = "gzip"

    def __init__(self, level: int = GZIP_LEVEL) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def _compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def _flush(self) -> bytes:
        return self._c.flush(zlib.Z_SYNC_FLUSH)

    def close(self) -> bytes:
        return self._c.flush(zlib.Z_FINISH)


class BrotliEncoder(_Streaming):
    coding = "br"

    def __init__(self, quality: int = BROTLI_QUALITY) -> None:
        self._c = brotli.Compressor(mode=brotli.MODE_TEXT, quality=quality)

    def _compress(self, data: bytes) -> bytes:
        return self._c.process(data)

    def _flush(self) -> bytes:
        return self._c.flush()

    def close(self) -> bytes:
        return self._c.finish()


class ZstdEncoder(_Streaming):
    coding = "zstd"

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        if zstandard is None:
            raise RuntimeError("zstd needs the zstandard module: pip install gate[zstd]")
        # A window browsers accept (RFC 8878 asks decoders for at least 8 MB): pin it rather than let
        # the level pick one.
        params = zstandard.ZstdCompressionParameters.from_level(level, window_log=20)
        self._c = zstandard.ZstdCompressor(compression_params=params).compressobj()
        self._block, self._finish = zstandard.COMPRESSOBJ_FLUSH_BLOCK, zstandard.COMPRESSOBJ_FLUSH_FINISH

    def _compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def _flush(self) -> bytes:
        return self._c.flush(self._block)

    def close(self) -> bytes:
        return self._c.flush(self._finish)


_MAKERS: dict[str, type[_Streaming]] = {
    "br": BrotliEncoder,
    "gzip": GzipEncoder,
    "zstd": ZstdEncoder,
}


def accepted(accept_encoding: str | None) -> dict[str, float]:
    """Accept-Encoding as {coding: q}, lower-cased; ``x-gzip`` read as gzip. A malformed q counts as 0."""
    out: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        name = "gzip" if name == "x-gzip" else name
        out[name] = max(q, out.get(name, 0.0))
    return out


def choose(accept_encoding: str | None, offered: tuple[str, ...] = PREFERENCE) -> str | None:
    """The coding to send the page in, or None for identity."""
    if not accept_encoding or not accept_encoding.strip():
        return None
    q = accepted(accept_encoding)
    star = q.get("*", 0.0)
    best, best_q = None, 0.0
    for coding in offered:  # in preference order: a later coding must be strictly more wanted
        weight = q.get(coding, star)
        if weight > best_q:
            best, best_q = coding, weight
    if best is None:
        return None
    # identity: always acceptable unless refused; preferred only when asked for more than the coding.
    identity = q.get("identity", star if "*" in q else 0.0)
    return best if best_q >= identity else None


def encoder_for(accept_encoding: str | None) -> Encoder | None:
    """An encoder for the visitor's Accept-Encoding, or None to send identity."""
    coding = choose(accept_encoding)
    return _MAKERS[coding]() if coding else None
