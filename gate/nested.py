"""Documents inside a page, and the other reading of content a browser may read two ways, each read
by a page reader one level deeper.

A frame's ``srcdoc`` or a ``data:`` URL's HTML is a document of its own: what it loads counts as the
page's, and its own first ``<base href>`` rules its URLs (``read_document``). Some content is markup
in one browser's reading and text in another's: noscript (scripting on: raw text; off: markup), raw
text where the tree builder may not switch the tokenizer, a CDATA section (in foreign content: text;
in HTML: a bogus comment up to the first ">"). The judge asks for that reading (``read_fragment``,
gate.verdict.Reader) and the reader reads CDATA itself (``cdata``): if either reading would load a
refused tag, or the readings could end in different states, the content goes.

A deeper reader shares the page's decisions and base, starts from the elements open here, injects
nothing, and is not made past gate.verdict.MAX_DEPTH: what lies deeper is uncertain.

These functions are PageRewriter's own methods, bound in gate/rewrite.py (the judge and the per-tag
path call them by name).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .htmlstream import State
from .verdict import MAX_DEPTH, Reading

if TYPE_CHECKING:
    from .rewrite import PageRewriter


def read_document(reader: PageRewriter, doc: bytes) -> Reading:
    """A frame's own document (srcdoc, a data: URL): its first <base href> rules its URLs."""
    sub = deeper(reader, "utf-8", [], document=True)
    out = sub.feed(doc) + sub.close()
    return Reading(out, sub.outcome, sub.base_read, True)


def read_fragment(reader: PageRewriter, content: bytes, push: str | None) -> Reading:
    """The other reading of an element's content, from the elements open here (``push``: the
    element itself, when it is a foreign one). A fragment follows this page's base."""
    tree = reader.tree
    foreign = tree.foreign + [tree.entry(push)] if push and tree.foreign else tree.foreign
    sub = deeper(reader, reader.encoding, foreign)
    sub.feed(content)
    clean = sub.state == State.DATA and not sub.buf and sub.unit is None  # it ended where ours does
    sub.close()
    return Reading(b"", sub.outcome, sub.base_read, clean)


def deeper(reader: PageRewriter, encoding: str, foreign: list[str], document: bool = False) -> PageRewriter:
    """A reader one level deeper, against this base, nothing injected."""
    return type(reader)(
        replace(reader.plan, head_html="", body_html=""),
        encoding,
        fragment=True,
        foreign=foreign,
        depth=reader.depth + 1,
        base=reader.base,
        base_set=False if document else reader.base_set or reader.tree.templates > 0,
        decisions=reader.decisions,
    )


def cdata(reader: PageRewriter, buf: bytes, pos: int, final: bool) -> int:
    """``<![CDATA[`` where it may be read as CDATA: held to its "]]>" (up to the cap) and sent only
    when both readings agree."""
    end = buf.find(b"]]>", pos + 9)
    if end < 0:
        if not final and len(buf) - pos <= reader.plan.carry_over:
            return -1
        end = len(buf) - 3
    end += 3
    unit = buf[pos:end]
    gt = unit.find(b">")  # read as HTML, "<![CDATA[" is a bogus comment ending at the first ">"
    refused, kept, clean = other_reading(reader, unit[gt + 1 :])
    if reader.refusing and (refused or not clean):
        reader.outcome.stripped |= refused
        reader.outcome.uncertain += 0 if refused else 1
        reader._cut()
        return end
    reader.outcome.kept |= kept
    reader.out.append(unit)
    return end


def other_reading(reader: PageRewriter, content: bytes) -> tuple[set[str], set[str], bool]:
    """``content`` read as markup: tags refused there, tags kept, whether it ends in data."""
    if b"<" not in content:
        return set(), set(), True
    if reader.depth >= MAX_DEPTH:
        return set(), set(), False
    sub = read_fragment(reader, content, None)
    reader.base_read = max(reader.base_read, sub.base_read)
    return set(sub.outcome.stripped), set(sub.outcome.kept), sub.clean and not sub.outcome.uncertain
