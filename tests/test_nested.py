"""Documents in a page and other readings (gate/nested.py): a CDATA section is sent only when its two
readings agree, a fragment says whether it ended where the page's reading does, and nothing is read
past MAX_DEPTH."""

from __future__ import annotations

import pytest

from gate import nested, urls, vendors
from gate.rewrite import MAX_DEPTH, PagePlan, PageRewriter

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
BASE = urls.parse("https://jobs.example.jp/")
PIXEL = b'<img src="https://www.facebook.com/tr?id=1">'


def reader(allowed: frozenset[str] = frozenset(), depth: int = 0) -> PageRewriter:
    return PageRewriter(PagePlan(REGISTRY, allowed, BASE), depth=depth)


def run(page: bytes, allowed: frozenset[str] = frozenset(), depth: int = 0) -> tuple[bytes, PageRewriter]:
    rw = reader(allowed, depth)
    return rw.feed(page) + rw.close(), rw


# In SVG, "<![CDATA[a>" … "]]>" is text; a browser reading it as HTML ends a bogus comment at the first
# ">", and the pixel after it loads.
CDATA = b"<svg><![CDATA[a>" + PIXEL + b"]]></svg>"


@pytest.mark.parametrize(
    ("page", "allowed", "sent", "stripped", "kept", "uncertain"),
    [
        (CDATA, frozenset(), b"<svg></svg>", {"facebook.pixel"}, set(), 0),
        (CDATA, ALL, CDATA, set(), {"facebook.pixel"}, 0),
        (b"<svg><![CDATA[a>x<b]]></svg>", frozenset(), b"<svg><![CDATA[a>x<b]]></svg>", set(), set(), 0),
        (b"<svg><![CDATA[a><script>x]]></svg>", frozenset(), b"<svg></svg>", set(), set(), 1),  # ends apart
        (b"<svg><![CDATA[no markup]]></svg>", frozenset(), b"<svg><![CDATA[no markup]]></svg>", set(), set(), 0),
    ],
    ids=["refused-in-html-reading", "allowed", "clean", "readings-end-apart", "no-lt"],
)
def test_a_cdata_section_is_sent_only_when_both_readings_agree(page, allowed, sent, stripped, kept, uncertain):
    out, rw = run(page, allowed)
    assert out == sent
    assert (rw.outcome.stripped, rw.outcome.kept, rw.outcome.uncertain) == (stripped, kept, uncertain)


def test_past_max_depth_markup_in_a_cdata_section_is_not_read_but_stripped():
    page = b"<svg><![CDATA[a>x<b]]></svg>"
    assert run(page, depth=MAX_DEPTH - 1)[0] == page
    out, rw = run(page, depth=MAX_DEPTH)
    assert out == b"<svg></svg>" and rw.outcome.uncertain == 1


@pytest.mark.parametrize(
    ("content", "clean", "stripped"),
    [
        (b"<p>x</p>" + PIXEL, True, {"facebook.pixel"}),
        (b"<p>x<!-- open", False, set()),  # ends inside a comment
        (b"<script>x", False, set()),  # ends inside a held element
        (b"<p x='open", False, set()),  # ends inside a tag
    ],
    ids=["data", "comment", "held", "tag"],
)
def test_a_fragment_says_whether_it_ends_where_the_page_does(content, clean, stripped):
    reading = reader().read_fragment(content, None)
    assert (reading.clean, reading.outcome.stripped, reading.out) == (clean, stripped, b"")


@pytest.mark.parametrize(
    ("page", "document", "base_set"),
    [
        (b'<base href="/b/">', False, True),  # a fragment follows the page's base
        (b'<base href="/b/">', True, False),  # a document's own first <base href> rules it
        (b"<template>", False, True),  # a <base> read inside a template is never the page's
        (b"<template>", True, False),
        (b"<p>", False, False),
    ],
    ids=["fragment-after-base", "document-after-base", "fragment-in-template", "document-in-template", "no-base"],
)
def test_a_deeper_reader_starts_from_this_base_and_injects_nothing(page, document, base_set):
    rw = PageRewriter(PagePlan(REGISTRY, frozenset(), BASE, head_html="<i>", body_html="<b>"), depth=1)
    rw.feed(page)
    sub = nested.deeper(rw, "utf-8", [], document=document)
    assert (sub.base, sub.base_set, sub.depth) == (rw.base, base_set, 2)
    assert (sub.plan.head_html, sub.plan.body_html, sub.decisions) == ("", "", rw.decisions)
