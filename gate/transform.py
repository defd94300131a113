"""The one byte-transform protocol of the page path.

Every stage a page's bytes go through speaks it: the Content-Encoding decoders (gate.decoders), the
rewriter (gate.rewrite.PageRewriter), the transcoder for pages not in an ASCII-compatible charset
(gate.charset.Transcoder), the page body as a whole (gate.pagebody.PageBody) and the visitor-side
encoder. ``feed(data)`` takes the next bytes and returns what can go out now (possibly b"");
``close()`` says the input has ended and returns the rest. Nothing is called after close().

A decoder's output can be unboundedly larger than its input (a bomb: a few KB for gigabytes), so the
decoders and the page body also hand the same output out as bounded pieces, lazily (``Pieces``): the
request path reads those, and no more than a piece or two is ever held. ``feed``/``close`` of such a
stage are the joined pieces, for callers whose output is small or capped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class ByteTransform(Protocol):
    """``feed(bytes) -> bytes`` as the input comes, ``close() -> bytes`` once it has ended."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


class Pieces(ByteTransform, Protocol):
    """A ByteTransform whose output may dwarf its input: the same output also as lazy pieces of a
    bounded size. Read each iterator to its end before the next call."""

    def pieces(self, data: bytes) -> Iterator[bytes]: ...

    def end_pieces(self) -> Iterator[bytes]: ...


class Joined:
    """feed/close as the joined pieces, for a class that defines ``pieces`` and ``end_pieces``."""

    def pieces(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError

    def end_pieces(self) -> Iterator[bytes]:
        raise NotImplementedError

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.pieces(data))

    def close(self) -> bytes:
        return b"".join(self.end_pieces())
