"""Every corpus case, refused and accepted, judged by html5lib."""

from __future__ import annotations

import pytest

from gate import decisions, urls, vendors
from gate.rewrite import PagePlan, PageRewriter

from .corpus import CASES
from .judge import live_tags
from .scans import scan_fixture

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
scan = scan_fixture(REGISTRY)  # every test runs on the C scan and on the pure-Python one
BASE = urls.parse("https://jobs.example.jp/jobs/1")


def rewrite(html: bytes, allowed: frozenset[str], chunk: int | None = None) -> tuple[bytes, object]:
    rw = PageRewriter(PagePlan(REGISTRY, allowed, BASE))
    if chunk is None:
        out = rw.feed(html) + rw.close()
    else:
        out = b"".join(rw.feed(html[i : i + chunk]) for i in range(0, len(html), chunk)) + rw.close()
    return out, rw.outcome


def test_corpus_is_big_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_tag_never_live(case):
    html = case.html.encode()
    claims_live = case.expect == "strip" and case.live_in_input
    assert (case.tag in live_tags(html, REGISTRY)) == claims_live, "the case does not show what it claims"
    allowed = ALL - {case.tag}
    out, outcome = rewrite(html, allowed)
    assert case.tag not in live_tags(out, REGISTRY)
    if case.expect == "keep":
        assert out == html
    else:
        assert out != html
        assert case.tag in outcome.stripped or outcome.uncertain


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_accepted_tag_passes_byte_identical(case):
    html = case.html.encode()
    out, outcome = rewrite(html, ALL)
    assert out == html
    assert not outcome.stripped


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_any_chunking_gives_the_same_bytes(case):
    html = case.html.encode()
    whole, _ = rewrite(html, ALL - {case.tag})
    for size in (1, 2, 3, 7, 64):
        assert rewrite(html, ALL - {case.tag}, chunk=size)[0] == whole


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_remembered_decisions_change_nothing(case):
    """The registry remembers script judgments and absolute links across pages: a case read with
    empty caches, then again with them filled (by itself and by every case before it), and then read
    against another page's URL, gives the same bytes and the same outcome."""
    html = case.html.encode()
    allowed = ALL - {case.tag}
    decisions.forget(REGISTRY)
    cold, cold_outcome = rewrite(html, allowed)
    warm, warm_outcome = rewrite(html, allowed)
    assert (warm, warm_outcome) == (cold, cold_outcome)
    other = PageRewriter(PagePlan(REGISTRY, allowed, urls.parse("http://careers.example.jp/events/")))
    decisions.forget(REGISTRY)
    expected = other.feed(html) + other.close(), other.outcome
    rewrite(html, allowed)  # fill the caches from the first page's URL
    again = PageRewriter(PagePlan(REGISTRY, allowed, urls.parse("http://careers.example.jp/events/")))
    assert (again.feed(html) + again.close(), again.outcome) == expected
