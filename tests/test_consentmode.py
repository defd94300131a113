"""Google Consent Mode v2: the defaults computed from the verified consent, injected only when a Google
tag is let through, after the guard and before the stubs and every page script."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import consentmode, vendors
from gate.consent import COOKIE_NAME, ConsentCodec, decide, undecided
from gate.proxy import head_html

from .conftest import KEY, asgi_client, gate_settings

REGISTRY = vendors.load()
G, D = "granted", "denied"
KINDS = [
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "security_storage",
]


@pytest.mark.parametrize(
    ("accepted", "expected"),
    [
        ((), [D, D, D, D, D, G]),
        (("improvement",), [D, D, D, G, D, G]),
        (("advertising",), [G, G, D, D, D, G]),
        (("advertising", "suggestions"), [G, G, G, D, D, G]),
        (("suggestions",), [D, D, D, D, D, G]),
        (("content",), [D, D, D, D, G, G]),
        (("improvement", "advertising", "suggestions", "content"), [G, G, G, G, G, G]),
    ],
    ids=["none", "improvement", "advertising", "ads-and-suggestions", "suggestions-alone", "content", "all"],
)
def test_defaults_follow_the_purposes(accepted, expected):
    # A site whose container also embeds content: only then is "content" shown, and so acceptable.
    registry = REGISTRY.with_tag_purposes({"google.tag_manager": ["improvement", "advertising", "content"]})
    assert consentmode.defaults(registry, decide(registry, accepted)) == dict(zip(KINDS, expected, strict=True))


def test_undecided_visitor_in_opt_out_mode_with_gpc():
    gpc = undecided(REGISTRY, gpc=True, opt_out_mode=True)
    assert consentmode.defaults(REGISTRY, gpc) == dict(zip(KINDS, [D, D, D, G, G, G], strict=True))
    assert consentmode.accepted_purposes(REGISTRY, gpc) == ["improvement", "content", "security"]


def test_injected_only_when_a_google_tag_is_let_through():
    none = decide(REGISTRY, [])
    assert consentmode.script(REGISTRY, none, none.allowed_tags(REGISTRY)) == ""
    meta_only = frozenset({"facebook.pixel"})
    assert consentmode.script(REGISTRY, decide(REGISTRY, ["advertising"]), meta_only) == ""
    # GTM alone is a Google tag: the container reads the consent state too.
    assert consentmode.script(REGISTRY, none, frozenset({"google.tag_manager"})).startswith("<script data-gate>")


def test_the_script_bootstraps_gtag_and_pushes_the_accepted_purposes():
    c = decide(REGISTRY, ["improvement"])
    script = consentmode.script(REGISTRY, c, c.allowed_tags(REGISTRY))
    assert script.startswith(
        "<script data-gate>window.dataLayer=window.dataLayer||[];"
        "function gtag(){dataLayer.push(arguments)}gtag('consent','default',{"
    )
    defaults = json.loads(re.search(r"gtag\('consent','default',(\{.*?\})\);", script).group(1))
    assert defaults["analytics_storage"] == G and defaults["ad_storage"] == D
    event = json.loads(re.search(r"dataLayer\.push\((\{.*?\})\);</script>$", script).group(1))
    assert event == {"event": "gate_consent", "gate_purposes": ["improvement", "security"]}
    assert "fbq" not in script and "wait_for_update" not in script


def test_head_order_is_guard_then_consent_mode_then_stubs_and_the_nonce_reaches_each():
    c = decide(REGISTRY, ["improvement"])
    head = head_html(REGISTRY, c.allowed_tags(REGISTRY), "n0nce", c)
    scripts = re.findall(r"<script data-gate nonce=\"n0nce\">(.*?)</script>", head)
    # ... then what refused vendors keep outside cookies is cleared (Criteo's, Adjust's: issue 11.4)
    assert len(scripts) == 4 and head.count("<script") == 4
    guard, mode, stubs, storage = scripts
    assert "__gateGuard" in guard and "gtag('consent','default'" in mode and "w.fbq=w.fbq||n" in stubs
    assert "localStorage:cto_bundle" in storage
    assert "w.gtag=" not in stubs  # GA4 is allowed: gtag is the real one, never a stub


# -- through the proxy ----------------------------------------------------------------------------
PAGE = (
    "<!doctype html><html><head><script>window.pageSawGtag = typeof gtag;</script>"
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO12345"></script></head>'
    "<body>求人</body></html>"
)


async def page_for(accepted: list[str] | None) -> str:
    app = gate_app.create_app(gate_settings("http://origin.test"))
    headers = {}
    if accepted is not None:
        headers["cookie"] = (
            f"{COOKIE_NAME}={ConsentCodec([KEY]).dumps(decide(app.state.gate.registries[None], accepted))}"
        )
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(
                200, headers={"content-type": "text/html; charset=utf-8"}, content=PAGE.encode()
            )
        )
        async with asgi_client(app) as client:
            return (await client.get("/", headers=headers)).text


@pytest.mark.anyio
async def test_a_visitor_who_accepted_analytics_gets_the_defaults_before_every_page_script():
    text = await page_for(["improvement"])
    mode = text.index("gtag('consent','default'")
    assert mode < text.index("window.pageSawGtag") < text.index("gtag/js?id=G-DEMO12345")
    assert '"analytics_storage":"granted"' in text and '"ad_storage":"denied"' in text


@pytest.mark.anyio
async def test_a_visitor_who_refused_google_gets_no_consent_mode():
    text = await page_for([])
    assert "gtag('consent'" not in text and "gate_consent" not in text and "gtag/js" not in text
