"""Personal data (APPI art. 27/31): a script that sends hashed e-mail or phone numbers to a vendor is
stripped unless the site says ``personal_data = true``, even when the visitor allowed its tag, and
the operator hears about it once per site and tag."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import proxy, settings
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.errors import ConfigError
from gate.settings import Site

from .conftest import KEY, asgi_client, gate_settings

PAGE = (
    "<!doctype html><html><head></head><body><p>応募</p>"
    "<script>fbq('init','100000000000001',{em:'5f1d7a…',ph:'9b3c…'});fbq('track','SubmitApplication');</script>"
    "</body></html>"
).encode()


async def fetch_twice(site: Site) -> list[httpx.Response]:
    app = gate_app.create_app(gate_settings("http://origin.test", sites=(site,)))
    cookie = ConsentCodec([KEY]).dumps(decide(app.state.gate.registries[site.host], ["advertising"]))
    out = []
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=PAGE)
        )
        async with asgi_client(app) as client:
            for _ in range(2):
                out.append(await client.get("/apply", headers={"cookie": f"{COOKIE_NAME}={cookie}"}))
    return out


@pytest.fixture(autouse=True)
def fresh_warnings():
    proxy._personal_data_warned.clear()
    yield
    proxy._personal_data_warned.clear()


@pytest.mark.anyio
async def test_stripped_by_default_and_the_operator_is_told_once(caplog):
    with caplog.at_level(logging.WARNING, "gate.proxy"):
        responses = await fetch_twice(Site(upstream="http://origin.test"))
    assert all("em:" not in r.text and "fbq('init'" not in r.text for r in responses)
    assert "kept=facebook.pixel" in responses[0].headers["gate-tags"]  # the visitor's decision is unchanged
    warnings = [r for r in caplog.records if "personal data" in r.getMessage()]
    assert len(warnings) == 1
    assert "facebook.pixel" in warnings[0].getMessage() and "stripped" in warnings[0].getMessage()


@pytest.mark.anyio
async def test_a_site_that_allows_personal_data_keeps_the_script_and_still_warns(caplog):
    with caplog.at_level(logging.WARNING, "gate.proxy"):
        responses = await fetch_twice(Site(upstream="http://origin.test", personal_data=True))
    assert all("em:'5f1d7a…'" in r.text for r in responses)
    assert len([r for r in caplog.records if "personal data" in r.getMessage()]) == 1


def test_personal_data_setting(tmp_path):
    conf = tmp_path / "gate.toml"
    conf.write_text("[[site]]\nupstream = 'demo'\npersonal_data = true\n")
    assert settings.load({"config": str(conf)}, {}).sites[0].personal_data is True
    assert settings.load({}, {}).sites[0].personal_data is False
    conf.write_text("[[site]]\nupstream = 'demo'\npersonal_data = 'yes'\n")
    with pytest.raises(ConfigError, match=r"site\[0\]\.personal_data: expected true or false"):
        settings.load({"config": str(conf)}, {})


async def fetch_accepting_all(page: bytes) -> httpx.Response:
    site = Site(upstream="http://origin.test")
    app = gate_app.create_app(gate_settings("http://origin.test", sites=(site,)))
    registry = app.state.gate.registries[site.host]
    cookie = ConsentCodec([KEY]).dumps(decide(registry, registry.refusable))
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=page)
        )
        async with asgi_client(app) as client:
            return await client.get("/jobs/1", headers={"cookie": f"{COOKIE_NAME}={cookie}"})


ONETAG = (
    "<script>window.criteo_q = window.criteo_q || [];\n"
    'window.criteo_q.push({ event: "setAccount", account: 10001 },\n'
    '  { event: "setEmail", email: "" },\n  { event: "viewItem", item: "dh-001" });</script>'
)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script", "runs"),
    [
        (ONETAG, True),  # Criteo's published snippet sends an empty e-mail: nothing
        (ONETAG.replace('email: ""', "email: h"), False),
        ('<script>var h = "5f1d7a";\ncriteo_q.push({"event": "setEmail", "email": h});</script>', False),
        ("<script>var PIXEL = '100000000000001';\nfbq('init', PIXEL, {em: h});</script>", False),
        ("<script>fbq('init', '100000000000001', {em: ''});</script>", True),
        ("<script>gtag('set', {user_data: {sha256_email_address: h}});</script>", False),
        ("<script>gtag('config', 'G-DEMO12345', {user_id: uid});</script>", False),
    ],
    ids=[
        "criteo-onetag-empty-email",
        "criteo-email-variable",
        "criteo-quoted-keys",
        "fbq-pixel-id-variable",
        "fbq-empty-em",
        "gtag-set-user-data-object",
        "ga4-user-id",
    ],
)
async def test_after_accept_all_only_real_sends_of_personal_data_are_stripped(script, runs):
    page = f"<!doctype html><html><head></head><body><p>求人</p>{script}</body></html>".encode()
    response = await fetch_accepting_all(page)
    assert (script in response.text) is runs
