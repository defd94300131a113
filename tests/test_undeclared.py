"""Issue 11.2: recipients nobody declared. Per site, undeclared = "strip" (the default in opt-in mode)
removes every script, frame, pixel, beacon and connection hint to a third-party host that is neither a
vendor of vendors.toml nor in the site's allow_hosts (each with its reason), and counts it; "report"
keeps them and counts them. The guard and the CSP follow the same list."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import guard, settings
from gate.consent import COOKIE_NAME
from gate.errors import ConfigError
from gate.settings import Site

from .conftest import asgi_client, gate_settings

pytestmark = pytest.mark.anyio
ORIGIN = "http://origin.test"
FORM = {"content-type": "application/x-www-form-urlencoded", "origin": "http://gate.test"}
UNDECLARED = [
    "<script src='https://tracker.example-ads.net/t.js'></script>",
    "<iframe src='https://widgets.example-ads.net/f.html'></iframe>",
    "<img src='https://px.example-ads.net/p.gif?u=1' width=1 height=1>",
    "<link rel=preconnect href='https://cdn.example-ads.net'>",
    "<a href='/jobs' ping='https://beacon.example-ads.net/b'>求人</a>",
]
KEPT = [
    "<script src='https://cdn.example-own.jp/app.js'></script>",  # allow_hosts
    "<img src='https://img.gate.test/photo.jpg'>",  # the site's own subdomain
    "<link rel=stylesheet href='https://fonts.example-fonts.net/css'>",  # a stylesheet: not a recipient
    "<a href='https://elsewhere.example.org/'>リンク</a>",  # a link is no load
]
# The examples, loading under "reject all" on today's main.
LINE_TIKTOK_CLARITY = (
    "<script async src='https://d.line-scdn.net/n/line_tag/public/release/v1/lt.js'></script>"
    "<img src='https://tr.line.me/tag.gif?c_t=lap&t_id=x&e=pv' width=1 height=1>"
    "<script>!function (w, d, t) {w.TiktokAnalyticsObject=t;var ttq=w[t]=w[t]||[];ttq.load=function(e){};"
    "ttq.load('C0000000000000000000');ttq.page();}(window, document, 'ttq');</script>"
    "<script>(function(c,l,a,r,i,t,y){c[a]=c[a]||function(){(c[a].q=c[a].q||[]).push(arguments)};"
    "t=l.createElement(r);t.async=1;t.src='https://www.clarity.ms/tag/'+i;"
    "y=l.getElementsByTagName(r)[0];y.parentNode.insertBefore(t,y);})"
    "(window, document, 'clarity', 'script', 'abcdefghij');</script>"
)


def page_of(*parts: str) -> bytes:
    return ("<!doctype html><html><head></head><body>" + "".join(parts) + "</body></html>").encode()


def make_app(**site):
    return gate_app.create_app(gate_settings(ORIGIN, sites=(Site(upstream=ORIGIN, **site),)))


async def fetch(app, body: bytes, choice: str = "reject_all") -> httpx.Response:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=body)
        )
        async with asgi_client(app) as client:
            r = await client.post("/_gate/consent", content=f"choice={choice}", headers=FORM)
            return await client.get("/jobs", headers={"cookie": f"{COOKIE_NAME}={r.cookies[COOKIE_NAME]}"})


ALLOW = {"cdn.example-own.jp": "our own CDN for scripts and images"}


async def test_opt_in_strips_every_load_to_an_undeclared_host_and_counts_it():
    app = make_app(allow_hosts=ALLOW)
    r = await fetch(app, page_of(*UNDECLARED, *KEPT), "accept_all")
    assert "example-ads.net" not in r.text
    for kept in KEPT:
        assert kept.split("'")[1] in r.text
    assert ">求人</a>" in r.text  # the link stays; its ping attribute goes
    counted = {a.host: n for a, n in app.state.gate.attempts.attempted_counts().items() if a.source == "html"}
    assert set(counted) == {
        "tracker.example-ads.net",
        "widgets.example-ads.net",
        "px.example-ads.net",
        "cdn.example-ads.net",
        "beacon.example-ads.net",
    }


async def test_report_keeps_todays_behaviour_and_still_counts():
    app = make_app(undeclared="report")
    r = await fetch(app, page_of(*UNDECLARED))
    assert all(part.split("'")[1] in r.text for part in UNDECLARED)
    assert sum(n for a, n in app.state.gate.attempts.attempted_counts().items() if a.source == "html") == 5


NOSCRIPT_PIXEL = "<noscript><img src='https://px.example-ads.net/ns.gif' alt=''></noscript>"


async def test_a_noscript_read_as_markup_is_held_to_the_same_rule():
    """Without JavaScript a <noscript> is markup and its pixel loads: stripped (and counted) under
    "strip", kept and counted under "report"."""
    app = make_app()
    r = await fetch(app, page_of(NOSCRIPT_PIXEL, "<p>x</p>"))
    assert "example-ads.net" not in r.text and "<p>x</p>" in r.text
    counted = {a.host for a in app.state.gate.attempts.attempted_counts() if a.source == "html"}
    assert counted == {"px.example-ads.net"}
    app = make_app(undeclared="report")
    r = await fetch(app, page_of(NOSCRIPT_PIXEL))
    assert NOSCRIPT_PIXEL in r.text
    assert {a.host for a in app.state.gate.attempts.attempted_counts() if a.source == "html"} == {"px.example-ads.net"}


async def test_opt_out_mode_reports_by_default_and_strips_when_told():
    assert not Site(upstream=ORIGIN, mode="opt-out").strips_undeclared
    assert Site(upstream=ORIGIN, mode="opt-out", undeclared="strip").strips_undeclared
    r = await fetch(make_app(mode="opt-out", undeclared="strip"), page_of(*UNDECLARED))
    assert "example-ads.net" not in r.text


async def test_line_tiktok_and_clarity_never_load_under_reject_all():
    r = await fetch(make_app(), page_of(LINE_TIKTOK_CLARITY))
    body = r.text[r.text.index("<body>") :]  # (the guard in <head> names their hosts, to stop them)
    assert "line_tag" not in body and "tr.line.me" not in body
    assert "TiktokAnalyticsObject" not in body and "clarity.ms" not in body


async def test_the_csp_and_the_guard_follow_the_same_list():
    app = make_app(allow_hosts=ALLOW, csp="enforce")
    r = await fetch(app, page_of("<p>x</p>"), "accept_all")
    policy = r.headers["content-security-policy"]
    assert "cdn.example-own.jp" in policy and "example-ads.net" not in policy
    config = json.loads(re.search(r"\}\)\((\{.*?\})\);</script>", r.text).group(1))
    declared = re.compile("^(?:" + config["a"] + ")$")
    assert declared.match("cdn.example-own.jp") and declared.match("connect.facebook.net".split(".", 1)[1])
    assert not declared.match("tracker.example-ads.net")
    registry = app.state.gate.registries[None]
    assert guard.refusals(registry, app.state.gate.carried[None])["a"] == config["a"]  # guard even when all is accepted


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('undeclared = "hide"\n', "site[0].undeclared: expected one of strip, report"),
        ('allow_hosts = ["cdn.example.jp"]\n', 'site[0].allow_hosts: expected a table of host = "reason"'),
        ('allow_hosts = { "cdn.example.jp" = "" }\n', "site[0].allow_hosts: expected a table"),
        ('allow_hosts = { "https://cdn.example.jp/x" = "cdn" }\n', "site[0].allow_hosts: expected a table"),
    ],
)
def test_settings_mistakes_are_one_line(tmp_path, toml, message):
    conf = tmp_path / "gate.toml"
    conf.write_text('[[site]]\nupstream = "http://127.0.0.1:8000"\n' + toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings.load({"config": str(conf)}, {"GATE_SECRET_KEY": "k" * 32})
