"""The public /_gate/ contract: consent read and written by form (303) and JSON (200), guarded by
Origin/Referer (403), a body cap (413) and id checks (400); healthz; static files cached for a year."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from gate import app as gate_app
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.settings import Site

from .conftest import asgi_client, gate_settings

pytestmark = pytest.mark.anyio
SELF = {"origin": "http://gate.test"}
FORM = {"content-type": "application/x-www-form-urlencoded"} | SELF
# "content" is no carried tag's purpose: never shown, so never accepted, not even by "accept all".
ALL = {"improvement": True, "advertising": True, "suggestions": True, "content": False}
NONE = dict.fromkeys(ALL, False)


@pytest.fixture
def app():
    return gate_app.create_app(gate_settings("http://origin.test"))


@pytest.fixture
async def client(app) -> AsyncIterator:
    async with asgi_client(app) as c:
        yield c


def cookie_of(response) -> str:
    """The gate_consent Set-Cookie line."""
    (line,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME + "=")]
    return line


def stored(app, response):
    """The Consent the response's cookie holds, as gate will read it back."""
    value = cookie_of(response).split(";")[0].split("=", 1)[1]
    return app.state.gate.codec.read(value, app.state.gate.registries[None])


# -- reading --------------------------------------------------------------------------------------
async def test_get_consent_undecided(app, client) -> None:
    r = await client.get("/_gate/consent")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json() == {
        "version": app.state.gate.registries[None].version,
        "decided": False,
        "purposes": NONE,
        "vendors_refused": [],
        "personal_data": [],
    }


@pytest.mark.parametrize("value", ["garbage", "a.b.c", "", "x" * 5000], ids=["garbage", "dots", "empty", "huge"])
async def test_unreadable_cookie_is_undecided(client, value: str) -> None:
    r = await client.get("/_gate/consent", headers={"cookie": f"{COOKIE_NAME}={value}"})
    assert r.status_code == 200 and r.json()["decided"] is False


async def test_tampered_cookie_is_undecided(app, client) -> None:
    r = await client.post("/_gate/consent", data={"choice": "accept_all"}, headers=SELF)
    value = cookie_of(r).split(";")[0].split("=", 1)[1]
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    r = await client.get("/_gate/consent", headers={"cookie": f"{COOKIE_NAME}={tampered}"})
    assert r.json()["decided"] is False


async def test_cookie_signed_by_the_old_key_still_verifies() -> None:
    old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    app = gate_app.create_app(gate_settings("http://origin.test", keys=f"{new},{old}"))
    registry = app.state.gate.registries[None]
    value = ConsentCodec([old]).dumps(decide(registry, ["improvement"]))
    async with asgi_client(app) as c:
        r = await c.get("/_gate/consent", headers={"cookie": f"{COOKIE_NAME}={value}"})
        assert r.json()["purposes"]["improvement"] is True
        r = await c.post("/_gate/consent", json={"choice": "accept_all"}, headers=SELF)
    fresh = cookie_of(r).split(";")[0].split("=", 1)[1]
    assert ConsentCodec([new]).read(fresh, registry).decided  # the newest key signs
    assert not ConsentCodec([old]).read(fresh, registry).decided


# -- writing: forms -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("form", "purposes", "refused"),
    [
        ({"choice": "accept_all"}, ALL, []),
        ({"choice": "reject_all"}, NONE, []),
        (
            {"choice": "custom", "purposes": ["improvement", "content"], "refuse_vendor": ["criteo", "facebook"]},
            NONE | {"improvement": True},
            ["criteo", "facebook"],
        ),
        ({"choice": "custom", "purposes": ["security"]}, NONE, []),  # always on, accepted silently
    ],
    ids=["accept-all", "reject-all", "custom", "security-is-known"],
)
async def test_form_decides_and_sees_the_visitor_back(app, client, form, purposes, refused) -> None:
    r = await client.post("/_gate/consent", data=form | {"next": "/jobs/42?from=list"}, headers=SELF)
    assert r.status_code == 303 and r.headers["location"] == "/jobs/42?from=list"
    consent = stored(app, r)
    assert consent.decided and dict(consent.purposes) == purposes and sorted(consent.vendors_refused) == refused
    assert consent.method == "banner"


async def test_cookie_attributes(app, client) -> None:
    r = await client.post("/_gate/consent", data={"choice": "reject_all"}, headers=SELF)
    attrs = {a.strip().split("=")[0].lower(): a for a in cookie_of(r).split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= set(attrs) and "secure" not in attrs
    assert attrs["path"].strip() == "Path=/" and attrs["samesite"].strip().lower() == "samesite=lax"
    assert attrs["max-age"].strip() == f"Max-Age={app.state.gate.codec.lifetime}"


async def test_cookie_is_secure_when_the_public_side_is_https() -> None:
    conf = gate_settings("http://origin.test")
    conf = dataclasses.replace(conf, sites=(Site(upstream="http://origin.test", public_scheme="https"),))
    async with asgi_client(gate_app.create_app(conf)) as c:
        r = await c.post("/_gate/consent", data={"choice": "reject_all"}, headers={"origin": "https://gate.test"})
    assert r.status_code == 303 and "secure" in cookie_of(r).lower()


async def test_preferences_page_form_is_recorded_as_page(app, client) -> None:
    r = await client.post("/_gate/consent", data={"choice": "reject_all", "source": "page"}, headers=SELF)
    assert stored(app, r).method == "page"


async def test_form_withdraw_deletes_the_cookie(client) -> None:
    r = await client.post("/_gate/consent", data={"choice": "withdraw", "next": "/privacy"}, headers=SELF)
    assert r.status_code == 303 and r.headers["location"] == "/privacy"
    line = cookie_of(r).lower()
    assert 'gate_consent=""' in line and "max-age=0" in line


@pytest.mark.parametrize(
    ("next_value", "expected"),
    [
        ("/jobs/42?q=歯科", "/jobs/42?q=%E6%AD%AF%E7%A7%91"),
        ("/", "/"),
        ("https://evil.example/", "/"),
        ("http://gate.test/jobs", "/"),  # absolute, even our own: a path is what the contract asks for
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("javascript:alert(1)", "/"),
        ("jobs/42", "/"),
        ("", "/"),
    ],
    ids=[
        "path",
        "root",
        "off-site",
        "absolute",
        "protocol-relative",
        "backslash",
        "tab",
        "crlf",
        "javascript",
        "relative",
        "empty",
    ],
)
async def test_next_only_goes_to_a_path_on_this_site(client, next_value: str, expected: str) -> None:
    r = await client.post("/_gate/consent", data={"choice": "reject_all", "next": next_value}, headers=SELF)
    assert r.status_code == 303 and r.headers["location"] == expected


async def test_missing_next_goes_home(client) -> None:
    r = await client.post("/_gate/consent", data={"choice": "reject_all"}, headers=SELF)
    assert r.headers["location"] == "/"


# -- writing: JSON --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "purposes", "refused"),
    [
        ({"choice": "accept_all"}, ALL, []),
        ({"choice": "reject_all"}, NONE, []),
        (
            {"purposes": {"improvement": True, "advertising": False}, "vendors_refused": ["yahoo"]},
            NONE | {"improvement": True},
            ["yahoo"],
        ),
    ],
    ids=["accept-all", "reject-all", "purposes"],
)
async def test_json_answers_with_the_state(app, client, body, purposes, refused) -> None:
    r = await client.post("/_gate/consent", json=body, headers=SELF)
    assert r.status_code == 200
    assert r.json() == {
        "version": app.state.gate.registries[None].version,
        "decided": True,
        "purposes": purposes,
        "vendors_refused": refused,
        "personal_data": [],
    }
    assert stored(app, r).method == "api"


async def test_delete_withdraws(client) -> None:
    r = await client.post("/_gate/consent", json={"choice": "accept_all"}, headers=SELF)
    cookie = cookie_of(r).split(";")[0]
    r = await client.delete("/_gate/consent", headers=SELF | {"cookie": cookie})
    assert r.status_code == 200 and r.json()["decided"] is False and r.json()["purposes"] == NONE
    assert "max-age=0" in cookie_of(r).lower()


# -- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "https://gate.test"},  # the scheme is part of the origin
        {"referer": "https://evil.example/page"},
        {"referer": "http://gate.test.evil.example/"},
        {},
    ],
    ids=["foreign-origin", "null-origin", "other-scheme", "foreign-referer", "lookalike-referer", "neither"],
)
async def test_foreign_or_unknown_origin_is_403(client, headers: dict) -> None:
    for method in ("POST", "DELETE"):
        r = await client.request(
            method, "/_gate/consent", data={"choice": "accept_all"} if method == "POST" else None, headers=headers
        )
        assert r.status_code == 403, method
        assert "set-cookie" not in r.headers


@pytest.mark.parametrize(
    "headers",
    [{"referer": "http://gate.test/jobs/1"}, {"origin": "http://gate.test:80"}],
    ids=["same-referer", "default-port"],
)
async def test_own_origin_or_referer_is_accepted(client, headers: dict) -> None:
    r = await client.post("/_gate/consent", data={"choice": "accept_all"}, headers=headers)
    assert r.status_code == 303


async def test_body_over_the_cap_is_413(app, client) -> None:
    cap = app.state.gate.settings.max_consent_body
    r = await client.post("/_gate/consent", content=b"choice=accept_all&" + b"x" * cap, headers=FORM)
    assert r.status_code == 413


async def test_body_over_the_cap_is_413_even_when_content_length_lies(app, client) -> None:
    cap = app.state.gate.settings.max_consent_body

    async def body():
        for _ in range(cap // 1000 + 2):
            yield b"x" * 1000

    r = await client.post("/_gate/consent", content=body(), headers=FORM | {"content-length": "10"})
    assert r.status_code == 413


@pytest.mark.parametrize(
    ("kind", "body", "named"),
    [
        ("form", {"choice": "custom", "purposes": ["improvement", "ads", "tracking"]}, ["ads, tracking"]),
        ("form", {"choice": "custom", "refuse_vendor": ["doubleclick"]}, ["doubleclick"]),
        ("json", {"purposes": {"ads": False}}, ["ads"]),
        ("json", {"choice": "custom", "vendors_refused": ["myspace"]}, ["myspace"]),
        ("json", {"choice": "maybe"}, ["maybe"]),
        ("form", {"choice": "maybe"}, ["maybe"]),
        ("json", {"purposes": {"improvement": "yes"}}, ["purposes"]),
        ("json", ["accept_all"], ["JSON object"]),
    ],
    ids=[
        "form-purposes",
        "form-vendor",
        "json-refused-typo",
        "json-vendor",
        "json-choice",
        "form-choice",
        "json-not-bool",
        "json-not-object",
    ],
)
async def test_bad_ids_are_400_and_named(client, kind: str, body, named: list[str]) -> None:
    kw = {"json": body} if kind == "json" else {"data": body}
    r = await client.post("/_gate/consent", headers=SELF, **kw)
    assert r.status_code == 400
    for name in named:
        assert name in r.text
    assert "set-cookie" not in r.headers


async def test_malformed_json_is_400(client) -> None:
    r = await client.post("/_gate/consent", content=b"{", headers=SELF | {"content-type": "application/json"})
    assert r.status_code == 400


async def test_other_body_types_are_415(client) -> None:
    r = await client.post("/_gate/consent", content=b"choice=accept_all", headers=SELF | {"content-type": "text/plain"})
    assert r.status_code == 415


async def test_unknown_host_is_421() -> None:
    conf = gate_settings("http://origin.test")
    conf = dataclasses.replace(conf, sites=(Site(upstream="http://origin.test", host="jobs.example.jp"),))
    async with asgi_client(gate_app.create_app(conf)) as c:
        assert (await c.get("/_gate/consent")).status_code == 421


async def test_other_methods_are_405(client) -> None:
    assert (await client.put("/_gate/consent", json={}, headers=SELF)).status_code == 405


# -- the rest -------------------------------------------------------------------------------------
async def test_healthz(client) -> None:
    r = await client.get("/_gate/healthz")
    assert r.status_code == 200 and r.text == "ok"


async def test_static_files_are_cached_for_a_year(client) -> None:
    r = await client.get("/_gate/static/gate.js")
    assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await client.get("/_gate/static/nope.js")).status_code == 404


async def test_unknown_gate_paths_are_404_not_proxied(client) -> None:
    # No origin is mocked: a proxied request would be a 502, not a 404.
    assert (await client.get("/_gate/nope")).status_code == 404


@pytest.mark.parametrize("path", ["/_gate/preferences", "/_gate/notice"])
async def test_pages_are_routed(client, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")


def test_contract_json_is_plain_json(app) -> None:
    registry = app.state.gate.registries[None]
    assert json.loads(json.dumps(decide(registry, ["improvement"]).as_public()))["purposes"]["improvement"] is True
