"""Content the page reader copies through, or drops, up to its end without holding it.

Most of a page is read a token at a time, but some stretches have no tag a browser acts on until they
end, and may be long: comments (``<!--`` to ``-->``), bogus comments (``<!x``, ``<?x``, ``</1`` to
">"), the raw text of an element whose start tag alone decides (iframe, textarea, title, xmp, noembed,
noframes: to its end tag), and what is left of an element held past the cap (gate.units). Holding
them would bound nothing, so they stream: gate.htmlstream.stream_end finds where each ends, however
the bytes are cut, and the reader copies or drops what comes until then (``Stream.keep``).

A "<" or a tag not complete in what has come waits for more, up to the cap (at the page's end it goes
out as it came: no browser acts on it). A tag longer than the cap cannot be judged either. The reader
follows the tag states to its ">" (StreamKind.TAG), then the content of the element it opened when
that is raw text or script data, and drops the lot when anything is refused ("uncertain", counted):
fail closed, never read past.

These functions are PageRewriter's own methods, bound in gate/rewrite.py (the per-tag path calls
them by name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import htmlstream as hs
from .htmlstream import State, StreamKind

if TYPE_CHECKING:
    from .rewrite import PageRewriter


def start(reader: PageRewriter, buf: bytes, pos: int, body: int, st: hs.Stream) -> int:
    """Begin streaming ``st``: what opened it (``buf[pos:body]``) is copied when it is kept."""
    if st.keep:
        reader.out.append(buf[pos:body])
    reader.stream, reader.state = st, State.STREAM
    return body


def step(reader: PageRewriter, buf: bytes, pos: int, final: bool) -> int:
    """Copy or drop the stream up to its end, or up to what has come; -1: wait for more."""
    st = reader.stream
    assert st is not None
    end, done = hs.stream_end(buf, pos, st, final)
    if st.keep:
        reader.out.append(buf[pos:end])
    if done:
        reader.stream, reader.state = st.then_stream(), State.DATA
        if reader.stream is not None:
            reader.state = State.STREAM
        return end
    return end if end > pos else -1


def comment(reader: PageRewriter, buf: bytes, pos: int, final: bool) -> int:
    """``<!--``: the empty comments ``<!-->`` and ``<!--->`` end at once; any other streams."""
    body = pos + 4
    if buf.startswith(b">", body) or buf.startswith(b"->", body):
        end = body + (1 if buf[body : body + 1] == b">" else 2)
        reader.out.append(buf[pos:end])
        return end
    if len(buf) < body + 2 and not final:
        return -1
    return start(reader, buf, pos, body, hs.Stream(StreamKind.COMMENT, True))


def text(reader: PageRewriter, buf: bytes, pos: int, size: int, final: bool) -> int:
    """A "<" (or "</") the bytes so far end on: more may make it markup; at the page's end it is text."""
    if not final:
        return -1
    reader.out.append(buf[pos : pos + size])
    return pos + size


def incomplete_tag(reader: PageRewriter, buf: bytes, pos: int, final: bool) -> int:
    """A tag not ended in what has come: wait for it, up to the cap; past it, stream it."""
    if final:
        reader.out.append(buf[pos:])  # EOF in a tag: the browser drops it
        return len(buf)
    if len(buf) - pos <= reader.plan.carry_over:
        return -1
    # Past the cap: follow the tag states as bytes stream by. Dropped when anything is refused.
    name = hs.tag_name(buf[pos + 1 : pos + 64].lstrip(b"/"))
    is_end = buf[pos + 1 : pos + 2] == b"/"
    # After the start tag of an element whose content is not markup, that content streams too.
    then = "" if is_end else (name if name in hs.RAWTEXT_END else "")
    keep = not reader.refusing
    if not keep:
        reader.outcome.uncertain += 1
        reader._cut()
    return start(reader, buf, pos, pos + 2, hs.Stream(StreamKind.TAG, keep, name=name, then=then))
