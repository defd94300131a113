"""Elements the page reader holds whole until their end tag: script, style, noscript, and raw text
wherever the tree builder may not switch the tokenizer (foreign content, <select>).

What such an element loads or runs is in its content (a script's ``fbq('init')``, a style's
``@import``, a noscript's ``<img>``), so its start tag alone cannot be judged: sending it while the
content still arrives would commit to an element whose end may turn out refused. The reader holds
the element, up to the plan's ``carry_over`` bytes, then judges it once: its content
(gate.verdict.judge_content; a DUAL element both ways, as raw text and as markup) and its start tag
(the reader's one place for start tags), put together by gate.verdict.element. The verdict is
remembered per registry like a tag's (gate.decisions); the key of a DUAL element also holds the open
elements, which its reading as markup starts from.

Past the cap the element cannot be judged: the rest is streamed to its end tag and dropped when
anything is refused ("uncertain", counted). Fail closed, never read past.

The functions taking ``reader`` are PageRewriter's own methods, bound in gate/rewrite.py (the reader's
per-tag path calls them by name); ``Unit`` and ``judged`` read nothing of the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import decisions as decisions_
from . import htmlstream as hs
from .htmlstream import State, StreamKind, UnitKind
from .verdict import Judging, Outcome, Verdict, element, judge_content

if TYPE_CHECKING:
    from .rewrite import PageRewriter


@dataclass
class Unit:
    """An element held until its end tag: offsets are relative to the element's first byte."""

    kind: UnitKind
    name: str
    tag_end: int
    attrs: tuple[hs.Attr, ...]
    scan: int  # where the search for the end tag goes on when more bytes come
    sub: int = hs.SCRIPT_NORMAL  # the script data state there

    def rest(self, keep: bool) -> hs.Stream:
        """Past the cap: what carries on to the element's end (script data, or raw text)."""
        if self.kind == UnitKind.SCRIPT or self.name == "script":
            return hs.Stream(StreamKind.SCRIPT, keep, sub=self.sub)
        return hs.Stream(StreamKind.RAW, keep, name=self.name if self.name in hs.RAWTEXT_END else "title")


def judged(
    buf: bytes, pos: int, content_end: int, end: int, u: Unit, ctx: Judging, start: Callable[[], Verdict]
) -> Verdict:
    """The element at ``buf[pos:end]`` as sent, or stripped: its content's verdict and its start
    tag's (``start``, asked after the content is read)."""
    content, read = judge_content(buf[pos + u.tag_end : content_end], u.name, u.kind == UnitKind.DUAL, u.attrs, ctx)
    tag = start()
    whole = element(content, tag.out, buf[pos + u.tag_end : end], ctx)
    outcome = Outcome()
    for part in (read.outcome, tag.outcome, whole.outcome):
        outcome.merge(part)
    return Verdict(whole.out, outcome, max(read.base_read, tag.base_read))


# -- the reader's steps (PageRewriter methods) ------------------------------------------------------
def begin(
    reader: PageRewriter, buf: bytes, tag: hs.Tag, kind: UnitKind, attrs: tuple[hs.Attr, ...], final: bool
) -> int:
    size = tag.end - tag.start
    reader.unit, reader.state = Unit(kind, tag.name, size, attrs, size), State.UNIT
    return step(reader, buf, tag.start, final)


def step(reader: PageRewriter, buf: bytes, pos: int, final: bool) -> int:
    """Look for the held element's end tag in what has come; -1: wait for more."""
    u = reader.unit
    assert u is not None
    idx, u.sub, resume = hs.content_end(buf, pos + u.scan, u.name, u.sub)
    end_tag = hs.TAG.match(buf, idx) if idx >= 0 else None
    if end_tag is None:
        u.scan = resume - pos
        if final:
            return _finish(reader, buf, pos, len(buf), len(buf), u)
        if len(buf) - pos > reader.plan.carry_over:
            return _oversized(reader, buf, pos, u, idx if idx >= 0 else resume)
        return -1
    return _finish(reader, buf, pos, idx, end_tag.end(), u)


def _oversized(reader: PageRewriter, buf: bytes, pos: int, u: Unit, upto: int) -> int:
    """Past the cap: stream the rest. Dropped (and counted) when anything is refused."""
    keep = not reader.refusing
    if not keep:
        reader.outcome.uncertain += 1
        reader._cut()
    else:
        reader.out.append(buf[pos:upto])
    reader.unit = None
    reader.stream = u.rest(keep)
    reader.state = State.STREAM
    return upto


def _finish(reader: PageRewriter, buf: bytes, pos: int, content_end: int, end: int, u: Unit) -> int:
    reader.unit, reader.state = None, State.DATA
    size = end - pos
    decisions = reader.decisions if size <= decisions_.CACHED_TAG_MAX else reader.decisions.long
    if decisions is None or size > decisions_.LONG_ELEMENT_MAX:
        verdict = _verdict(reader, buf, pos, content_end, end, u)
    else:
        key: tuple[object, ...] = (
            "unit",
            buf[pos:end],
            u.tag_end,
            content_end - pos,
            u.name,
            u.kind,
            reader._context,
        )
        if u.kind == UnitKind.DUAL:  # the other reading starts from the open elements
            key += reader.tree.key()
        verdict = decisions.decide(key, reader.base, lambda: _verdict(reader, buf, pos, content_end, end, u))
    out = reader._decided(verdict)
    if out is not None:
        reader.out.append(out)
    else:
        reader._cut()
    return end


def _verdict(reader: PageRewriter, buf: bytes, pos: int, content_end: int, end: int, u: Unit) -> Verdict:
    def start() -> Verdict:
        tag = hs.read_tag(buf, pos)
        assert tag is not None
        return reader._decide_tag(buf, tag, u.attrs)

    return judged(buf, pos, content_end, end, u, reader._judging(reader.tree.in_foreign), start)
