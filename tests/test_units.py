"""Elements held whole (gate/units.py): read to their end tag however the bytes are cut, judged from
content and start tag together, remembered with the open elements when read both ways, and past the
cap streamed to their own end tag."""

from __future__ import annotations

import pytest

from gate import urls, vendors
from gate.htmlstream import StreamKind, UnitKind
from gate.rewrite import PagePlan, PageRewriter
from gate.units import Unit, judged
from gate.verdict import Outcome, Verdict

from .scans import scan_fixture

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
scan = scan_fixture(REGISTRY)  # every test runs on the C scan and on the pure-Python one
BASE = urls.parse("https://jobs.example.jp/")
PIXEL = b'<img src="https://www.facebook.com/tr?id=1">'


def run(chunks: list[bytes], allowed: frozenset[str] = frozenset(), **plan) -> tuple[bytes, PageRewriter]:
    rw = PageRewriter(PagePlan(REGISTRY, allowed, BASE, **plan))
    return b"".join(rw.feed(c) for c in chunks) + rw.close(), rw


# A script whose "</script>" inside "<!--<script>" does not end it: where the end is depends on the
# script data state, which must carry over when the bytes are cut inside the element.
ESCAPED = b'<p>a</p><script><!--<script>a</script>fbq("init","1")</script>--></script><p>after</p>'
HELD = [
    pytest.param(ESCAPED, b"<p>a</p>--></script><p>after</p>", id="script-double-escaped"),
    pytest.param(b"<style>@import url(https://www.facebook.com/tr?id=1);</style><p>b", b"<p>b", id="style"),
    pytest.param(b"<noscript>" + PIXEL + b"</noscript><p>c", b"<p>c", id="noscript"),
]


@pytest.mark.parametrize(("page", "refused"), HELD)
def test_a_held_element_cut_at_any_byte_reads_as_when_whole(page, refused):
    assert run([page])[0] == refused
    for i in range(1, len(page)):
        assert run([page[:i], page[i:]])[0] == refused, i
    assert run([page], ALL)[0] == page


def test_the_same_element_read_both_ways_is_remembered_with_the_elements_open_around_it():
    # In HTML, <title> inside noscript is RCDATA: the pixel is text. Inside <svg> the same bytes are
    # foreign markup and the pixel breaks out: a verdict remembered without the open elements would
    # let the second one through as the first.
    inner = b"<noscript><title>" + PIXEL + b"</title></noscript>"
    out, rw = run([inner + b"<svg>" + inner + b"</svg><p>x"])
    assert out == inner + b"<svg></svg><p>x"
    assert rw.outcome.stripped == {"facebook.pixel"}


@pytest.mark.parametrize(
    ("kind", "name", "stream", "ends_at"),
    [
        (UnitKind.SCRIPT, "script", StreamKind.SCRIPT, ""),
        (UnitKind.DUAL, "script", StreamKind.SCRIPT, ""),  # a script in foreign content
        (UnitKind.STYLE, "style", StreamKind.RAW, "style"),
        (UnitKind.DUAL, "noscript", StreamKind.RAW, "noscript"),
        (UnitKind.DUAL, "textarea", StreamKind.RAW, "textarea"),
        (UnitKind.DUAL, "plaintext", StreamKind.RAW, "title"),  # no end tag of its own to look for
    ],
)
def test_past_the_cap_the_rest_streams_to_the_elements_own_end(kind, name, stream, ends_at):
    rest = Unit(kind, name, 10, (), 10, sub=3).rest(keep=False)
    assert (rest.kind, rest.name, rest.keep) == (stream, ends_at, False)
    assert rest.sub == (3 if stream == StreamKind.SCRIPT else 0)


@pytest.mark.parametrize(("allowed", "uncertain"), [(frozenset(), 1), (ALL, 0)], ids=["refusing", "all-allowed"])
def test_a_style_past_the_cap_is_dropped_to_its_end_tag_and_what_follows_is_read(allowed, uncertain):
    style = b"<style>" + b"p{}" * 3000  # its end tag not yet in sight when the cap is reached
    rest = b"</style><p>after</p>" + PIXEL
    out, rw = run([style, rest], allowed, carry_over=4096)
    assert out == (b"<p>after</p>" if uncertain else style + rest)
    assert rw.outcome.uncertain == uncertain


def _verdict(out: bytes | None, *tags: str) -> Verdict:
    return Verdict(out, Outcome(stripped=set(tags)), 0)


@pytest.mark.parametrize(
    ("page", "tag_out", "sent"),
    [
        (b"<style>p{}</style>", b"<style>", b"<style>p{}</style>"),
        (b"<style>p{}</style>", None, None),  # the start tag goes: the element goes
        (b"<style>@import url(https://www.facebook.com/tr?id=1);</style>", b"<style>", None),
    ],
    ids=["both-clean", "tag-refused", "content-refused"],
)
def test_judged_joins_the_contents_verdict_and_the_start_tags(page, tag_out, sent):
    rw = PageRewriter(PagePlan(REGISTRY, frozenset(), BASE))
    asked = []

    def start() -> Verdict:
        asked.append(True)
        return _verdict(tag_out, "start.tag")

    unit = Unit(UnitKind.STYLE, "style", len(b"<style>"), (), 0)
    v = judged(page, 0, len(page) - len(b"</style>"), len(page), unit, rw._judging(False), start)
    assert v.out == sent
    assert asked == [True]
    assert "start.tag" in v.outcome.stripped  # what the start tag's verdict found is kept
    assert ("facebook.pixel" in v.outcome.stripped) == (b"facebook" in page)


# -- long elements: remembered apart, fewer of them ------------------------------------------------
def long_style(n: int, size: int) -> bytes:
    """An inline <style> of ``size`` bytes (a page's critical CSS), the n-th of its kind."""
    head = f"<style>/* {n} */ .card{{margin:0}}".encode()
    return head + b" " * (size - len(head) - len(b"</style>")) + b"</style>"


def judgments(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the elements judged (not looked up) from here on."""
    from gate import units

    seen: list[int] = []
    verdict = units._verdict

    def counting(reader, buf, pos, content_end, end, u):  # type: ignore[no-untyped-def]
        seen.append(end - pos)
        return verdict(reader, buf, pos, content_end, end, u)

    monkeypatch.setattr(units, "_verdict", counting)
    return seen


def test_a_long_element_is_judged_on_the_first_page_and_looked_up_on_the_next(monkeypatch):
    from gate import decisions

    decisions.forget(REGISTRY)
    style = long_style(1, 5000)  # over CACHED_TAG_MAX
    page = b"<p>a</p>" + style + b"<p>b</p>"
    seen = judgments(monkeypatch)
    assert run([page])[0] == page
    assert seen == [len(style)]
    assert run([page])[0] == page and run([page[:3000], page[3000:]])[0] == page
    assert seen == [len(style)]  # the next pages, whole or cut, looked it up


def test_an_element_over_the_long_limit_is_judged_every_time(monkeypatch):
    from gate import decisions

    decisions.forget(REGISTRY)
    style = long_style(2, decisions.LONG_ELEMENT_MAX + 1)
    seen = judgments(monkeypatch)
    for _ in range(2):
        assert run([style + b"<p>x"])[0] == style + b"<p>x"
    assert seen == [len(style)] * 2


def test_long_elements_are_remembered_at_most_long_entries_of_them():
    from gate import decisions

    decisions.forget(REGISTRY)
    for n in range(decisions.LONG_ENTRIES * 3):
        run([long_style(n, 4000)])
    held = decisions.of(REGISTRY).long
    assert held is not None and len(held) == decisions.LONG_ENTRIES
