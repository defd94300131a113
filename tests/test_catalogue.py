"""Issue 11.4: a tag that does catalogue retargeting declares that purpose too. The Meta pixel's events
that name catalogue items (fbq('track', 'ViewContent', {content_ids: …})) make Meta show the jobs viewed
as ads elsewhere: 利用者へのサービスの提案 (suggestions), not only advertising. The page decides: the
script with such a call needs both purposes; the pixel's base code and plain events need advertising."""

from __future__ import annotations

import httpx
import pytest

from gate.app import create_app
from gate.consent import ConsentCodec, decide
from gate.settings import Site

from .conftest import KEY, gate_settings, serve
from .judge import live_tags
from .test_draft import page, site_app

BASE = (
    "<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?"
    "n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;n.push=n;n.loaded=!0;"
    "n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;t.src=v;s=b.getElementsByTagName(e)[0];"
    "s.parentNode.insertBefore(t,s)}(window, document,'script','https://connect.facebook.net/en_US/fbevents.js');"
    "fbq('init', '123456789');fbq('track', 'PageView');</script>"
)
CATALOGUE = "<script>fbq('track', 'ViewContent', {content_ids: ['dh-001'], content_type: 'product'});</script>"
PLAIN_EVENT = "<script>fbq('track', 'Lead');</script><script>fbq('track', 'ViewContent');</script>"
PIXEL_IMG = (
    '<img src="https://www.facebook.com/tr?id=123456789&ev=ViewContent&cd[content_ids]=dh-001" width=1 height=1>'
)
PAGES = {"/jobs/dh-001": page(BASE, PLAIN_EVENT + CATALOGUE + PIXEL_IMG)}


def visit(accepted: list[str]) -> str:
    with serve(site_app(PAGES, [])) as origin:
        app = create_app(gate_settings(origin, sites=(Site(upstream=origin, vendors=("facebook",)),)))
        cookie = ConsentCodec((KEY,)).dumps(decide(app.state.gate.registries[None], accepted))
        with serve(app) as public:
            return httpx.get(public + "/jobs/dh-001", cookies={"gate_consent": cookie}).text


def test_advertising_alone_keeps_the_pixel_but_not_its_catalogue_events():
    shown = visit(["advertising"])
    assert "fbq('init', '123456789')" in shown and "fbq('track', 'Lead')" in shown  # the pixel works
    assert "fbq('track', 'ViewContent');" in shown  # an event naming no catalogue item is the pixel's
    assert "{content_ids: ['dh-001']" not in shown  # the jobs viewed are not sent for retargeting
    assert "cd[content_ids]=dh-001" not in shown
    # with suggestions accepted too, the catalogue events run
    shown = visit(["advertising", "suggestions"])
    assert "fbq('track', 'ViewContent', {content_ids: ['dh-001']" in shown
    assert "facebook.com/tr?id=123456789&ev=ViewContent&cd[content_ids]=dh-001" in shown


@pytest.mark.parametrize(
    "snippet",
    [CATALOGUE, "<script>fbq('trackSingle', '1', 'AddToCart', {value: 1, content_ids: ['a']});</script>"],
    ids=["view-content-ids", "track-single"],
)
def test_the_judge_reads_the_catalogue_purpose_from_the_page(snippet):
    """tests/judge.py, the oracle the corpus and property tests use, reads the same vendors.toml."""
    from gate import vendors

    registry = vendors.load()
    assert live_tags(page(body=snippet), registry) == {"facebook.pixel", "facebook.catalogue"}


def test_the_notice_names_the_suggestions_purpose_for_the_catalogue_events():
    with serve(site_app(PAGES, [])) as origin:
        app = create_app(gate_settings(origin, sites=(Site(upstream=origin, vendors=("facebook",)),)))
        with serve(app) as public:
            notice = httpx.get(public + "/_gate/notice").text
    row = notice[notice.index("Meta ピクセル(カタログのイベント") :][:3000]
    assert "利用者へのサービスの提案" in row and "閲覧した求人のID(content_ids)" in row
