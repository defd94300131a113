"""Content streamed to its end (gate/streams.py): comments and bogus comments hide what they hold and
end where a browser ends them, a "<" cut at the end of a chunk waits for the rest, and a tag longer
than the cap is dropped with the content of the element it opens."""

from __future__ import annotations

import pytest

from gate import urls, vendors
from gate.rewrite import PagePlan, PageRewriter

from .scans import scan_fixture

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
scan = scan_fixture(REGISTRY)  # every test runs on the C scan and on the pure-Python one
BASE = urls.parse("https://jobs.example.jp/")
PIXEL = b'<img src="https://www.facebook.com/tr?id=1">'


HEAD = b"<i data-gate>"


def run(chunks: list[bytes], allowed: frozenset[str] = frozenset(), **plan) -> tuple[bytes, PageRewriter]:
    """The page as sent, without the injected HEAD: until the first start tag, where it goes, the
    reader reads every "<" itself (no fast scan passes a comment before it)."""
    rw = PageRewriter(PagePlan(REGISTRY, allowed, BASE, head_html=HEAD.decode(), **plan))
    out = b"".join(rw.feed(c) for c in chunks) + rw.close()
    assert out.count(HEAD) == 1
    return out.replace(HEAD, b""), rw


@pytest.mark.parametrize(
    ("page", "sent"),
    [
        (b"<!-- " + PIXEL + b" -->" + PIXEL + b"<p>", b"<!-- " + PIXEL + b" --><p>"),
        (b"<!-- a --!>" + PIXEL + b"<p>", b"<!-- a --!><p>"),
        (b"<!-->" + PIXEL + b"<p>", b"<!--><p>"),  # empty comments end at once
        (b"<!--->" + PIXEL + b"<p>", b"<!---><p>"),
        (b"<?x " + PIXEL + b"<p>", b"<?x " + PIXEL + b"<p>"),  # a bogus comment ends at the first ">"
        (b"</1 " + PIXEL + b"<p>", b"</1 " + PIXEL + b"<p>"),
        (b"<!x>" + PIXEL + b"<p>", b"<!x><p>"),
        (b"<textarea>" + PIXEL + b"</textarea>" + PIXEL, b"<textarea>" + PIXEL + b"</textarea>"),
    ],
    ids=[
        "comment",
        "comment-bang-end",
        "empty-comment",
        "empty-comment-dash",
        "bogus-?",
        "bogus-</1",
        "bogus-!x",
        "raw",
    ],
)
def test_a_stream_hides_what_it_holds_and_ends_where_a_browser_ends_it(page, sent):
    out, rw = run([page])
    assert out == sent
    for i in range(1, len(page)):
        assert run([page[:i], page[i:]])[0] == sent, i


def test_a_lt_at_the_end_of_a_chunk_waits_for_what_follows():
    assert run([b"<p>a<", PIXEL[1:]])[0] == b"<p>a"  # the "<" is the pixel's: it goes with it


@pytest.mark.parametrize("page", [b"<p>a<", b"<p>a</"], ids=["lt", "lt-slash"])
def test_a_lt_at_the_end_of_the_page_is_text(page):
    assert run([page])[0] == page


def test_a_tag_cut_at_the_end_of_a_chunk_is_read_once_whole():
    assert run([b"<p>" + PIXEL[:9], PIXEL[9:] + b"<p>"])[0] == b"<p><p>"
    assert run([b"<p>" + PIXEL[:9]])[0] == b"<p>" + PIXEL[:9]  # EOF in a tag: sent as it came


LONG = b' data-x="' + b"y" * 5000 + b'"'


@pytest.mark.parametrize(
    ("chunks", "refusing_sends"),
    [
        ([b"<p>a<img" + LONG, b">" + PIXEL + b"<p>b"], b"<p>a<p>b"),
        ([b"<script" + LONG, b">fbq('init','1')</script><p>b"], b"<p>b"),  # its content goes with it
        ([b"<style" + LONG, b">@import url(https://www.facebook.com/tr?id=1);</style><p>b"], b"<p>b"),
        ([b"</div" + LONG, b"><p>b" + PIXEL], b"<p>b"),
    ],
    ids=["void", "script", "style", "end-tag"],
)
def test_a_tag_past_the_cap_goes_with_the_content_it_opens_when_anything_is_refused(chunks, refusing_sends):
    out, rw = run(chunks, carry_over=4096)
    assert out == refusing_sends
    assert rw.outcome.uncertain == 1
    out, rw = run(chunks, ALL, carry_over=4096)
    assert out == b"".join(chunks)
    assert rw.outcome.uncertain == 0
