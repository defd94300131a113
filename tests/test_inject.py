"""What gate adds and the start tags that change the rest of the reading (gate/inject.py): stubs only
for globals no allowed tag provides, the first <base href> the browser keeps is the base, and a form
asking for personal data withdraws the form readers from there on."""

from __future__ import annotations

import pytest

from gate import urls, vendors
from gate.inject import stub_script
from gate.rewrite import PagePlan, PageRewriter

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
BASE = urls.parse("https://jobs.example.jp/jobs/1")
FBQ = b"<script src='https://connect.facebook.net/en_US/fbevents.js'></script>"


def run(page: bytes, allowed: frozenset[str] = ALL, **plan) -> tuple[bytes, PageRewriter]:
    rw = PageRewriter(PagePlan(REGISTRY, allowed, BASE, **plan))
    return rw.feed(page) + rw.close(), rw


def test_stubs_only_for_globals_no_allowed_tag_provides():
    none = stub_script(REGISTRY, frozenset())
    assert "w.fbq=w.fbq||n" in none and "w.gtag=w.gtag||n" in none and "w.criteo_q=w.criteo_q||[]" in none
    assert "w.Adjust=" in none
    with_ga = stub_script(REGISTRY, frozenset({"google.analytics"}))
    assert "w.gtag=" not in with_ga  # the real gtag.js must define it: a stub would shadow nothing, but
    assert "w.fbq=" in with_ga  # fbq's loader returns early when fbq exists, so never stub it when allowed
    assert stub_script(REGISTRY, ALL) == ""


FB_BASE = b'<base href="https://www.facebook.com/">'


@pytest.mark.parametrize(
    ("page", "allowed", "base"),
    [
        (b'<base href="https://cdn.example/a/">', ALL, "https://cdn.example/a/"),
        (b'<base href="../b/">', ALL, "https://jobs.example.jp/b/"),  # against the page's URL
        (b'<base href="/a/"><base href="https://cdn.example/">', ALL, "https://jobs.example.jp/a/"),
        (b'<base target="_top"><base href="/a/">', ALL, "https://jobs.example.jp/a/"),  # the first with an href
        (b'<template><base href="/t/"></template><base href="/a/">', ALL, "https://jobs.example.jp/a/"),
        (FB_BASE + b'<base href="/a/">', frozenset(), "https://jobs.example.jp/a/"),  # stripped: not the base
        (FB_BASE + b'<base href="/a/">', ALL, "https://www.facebook.com/"),
        (b"<p>", ALL, "https://jobs.example.jp/jobs/1"),
    ],
    ids=["absolute", "relative", "first-wins", "no-href", "in-template", "stripped", "kept-vendor", "none"],
)
def test_the_first_base_with_an_href_the_browser_keeps_is_the_base(page, allowed, base):
    _, rw = run(page, allowed)
    assert f"{rw.base.scheme}://{rw.base.host}{rw.base.path}" == base


@pytest.mark.parametrize(
    ("readers", "sent", "kept", "stripped"),
    [
        (frozenset({"facebook.pixel"}), FBQ + b"<input type=email name=mail>", {"facebook.pixel"}, {"facebook.pixel"}),
        (frozenset(), FBQ + b"<input type=email name=mail>" + FBQ, {"facebook.pixel"}, set()),
    ],
    ids=["a-form-reader", "not-a-form-reader"],
)
def test_a_personal_data_form_withdraws_the_form_readers_after_it(readers, sent, kept, stripped):
    # The same tag before and after the form: its remembered verdict from before must not be reused.
    out, rw = run(FBQ + b"<input type=email name=mail>" + FBQ, form_readers=readers)
    assert out == sent
    assert (rw.outcome.kept, rw.outcome.stripped, rw.outcome.form_page) == (kept, stripped, True)
    assert rw.allowed == ALL - readers
