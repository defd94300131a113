"""Narrowing or withdrawing consent expires the refused tags' cookies the visitor sent, HttpOnly ones
included, host-only and on every domain they may live on; a public suffix is never a cookie domain."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gate import app as gate_app
from gate import expiry, vendors
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.settings import Site

from .conftest import KEY, asgi_client, gate_settings

REGISTRY = vendors.load()
ALL = frozenset(REGISTRY.tags)
GA = frozenset({"google.analytics"})
SENT = ["_ga", "_ga_ABC123", "_gid", "_gcl_au", "_fbp", "_fbc", "cto_bundle", "_ycl_yjad", "session", "cart"]


# -- which names ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        (frozenset(), ["_fbc", "_fbp", "_ga", "_ga_ABC123", "_gcl_au", "_gid", "_ycl_yjad", "cto_bundle"]),
        (GA, ["_fbc", "_fbp", "_gcl_au", "_ycl_yjad", "cto_bundle"]),
        (ALL - {"facebook.pixel"}, ["_fbc", "_fbp"]),
        (ALL, []),
    ],
    ids=["nothing-allowed", "analytics-only", "all-but-meta", "everything"],
)
def test_only_sent_cookies_of_refused_tags_expire(allowed, expected):
    assert expiry.refused_cookies(REGISTRY, allowed, SENT) == expected


def test_patterns_are_prefixes_and_unsent_names_never_expire():
    assert expiry.refused_cookies(REGISTRY, frozenset(), ["_ga_", "_gat_UA1", "_gax", "__utmz"]) == [
        "__utmz",
        "_ga_",
        "_gat_UA1",
    ]
    assert expiry.refused_cookies(REGISTRY, frozenset(), []) == []


def test_a_name_we_could_not_write_back_is_left_alone():
    assert expiry.refused_cookies(REGISTRY, frozenset(), ["_ga_a b", "_ga_x;y", "_ga_ok"]) == ["_ga_ok"]


# -- which domains --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "domains"),
    [
        ("jobs.example.jp", ["jobs.example.jp", "example.jp"]),
        ("example.jp", ["example.jp"]),
        ("a.b.example.jp", ["a.b.example.jp", "b.example.jp", "example.jp"]),
        ("jobs.example.co.jp", ["jobs.example.co.jp", "example.co.jp"]),
        ("example.co.jp", ["example.co.jp"]),
        ("shop.example.com.au", ["shop.example.com.au", "example.com.au"]),
        ("JOBS.Example.JP.", ["jobs.example.jp", "example.jp"]),
        ("localhost", []),
        ("127.0.0.1", []),
        ("[::1]", []),
    ],
    ids=lambda v: str(v),
)
def test_cookie_domains_stop_above_a_public_suffix(host, domains):
    assert expiry.cookie_domains(host) == domains
    assert not {"co.jp", "jp", "com.au"} & set(expiry.cookie_domains(host))


def test_headers_expire_host_only_and_on_every_domain():
    assert expiry.expiry_headers(["_fbp"], "jobs.example.jp", secure=True) == [
        "_fbp=; Max-Age=0; Path=/; Secure",
        "_fbp=; Max-Age=0; Path=/; Domain=.jobs.example.jp; Secure",
        "_fbp=; Max-Age=0; Path=/; Domain=.example.jp; Secure",
    ]
    assert expiry.expiry_headers(["_ga"], "127.0.0.1", secure=False) == ["_ga=; Max-Age=0; Path=/"]


# -- in the consent responses ---------------------------------------------------------------------
HOST = "http://jobs.example.co.jp"
SELF = {"origin": HOST}
JSON = {"content-type": "application/json"} | SELF


@pytest.fixture
def app():
    return gate_app.create_app(gate_settings("http://origin.test"))


@pytest.fixture
async def client(app) -> AsyncIterator:
    async with asgi_client(app, base_url=HOST) as c:
        yield c


def cookie_header(*names: str, consent: str | None = None) -> dict[str, str]:
    pairs = [f"{n}=v" for n in names] + ([f"{COOKIE_NAME}={consent}"] if consent else [])
    return {"cookie": "; ".join(pairs)}


def expired(response) -> dict[str, set[str]]:
    """{cookie name: {"" (host-only) or the Domain}} of every Max-Age=0 Set-Cookie but gate's own."""
    out: dict[str, set[str]] = {}
    for line in response.headers.get_list("set-cookie"):
        name = line.split("=", 1)[0]
        if "Max-Age=0" in line and name != COOKIE_NAME:
            domain = next((p.split("=", 1)[1] for p in line.split("; ") if p.startswith("Domain=")), "")
            out.setdefault(name, set()).add(domain)
    return out


DOMAINS = {"", ".jobs.example.co.jp", ".example.co.jp"}


@pytest.mark.anyio
async def test_reject_all_expires_every_vendor_cookie_sent_and_nothing_else(client) -> None:
    r = await client.post(
        "/_gate/consent",
        json={"choice": "reject_all"},
        headers=SELF | cookie_header("_ga", "_ga_XYZ", "_fbp", "cto_bundle", "session"),
    )
    assert r.status_code == 200
    assert expired(r) == {"_ga": DOMAINS, "_ga_XYZ": DOMAINS, "_fbp": DOMAINS, "cto_bundle": DOMAINS}


@pytest.mark.anyio
async def test_narrowing_expires_only_what_is_no_longer_allowed(app, client) -> None:
    codec, registry = ConsentCodec([KEY]), app.state.gate.registries[None]
    everything = codec.dumps(decide(registry, registry.refusable))
    r = await client.post(
        "/_gate/consent",
        json={"purposes": {"improvement": True, "advertising": False}},
        headers=SELF | cookie_header("_ga", "_gid", "_fbp", "_gcl_au", consent=everything),
    )
    assert r.json()["purposes"]["improvement"] is True
    assert set(expired(r)) == {"_fbp", "_gcl_au"}


@pytest.mark.anyio
async def test_accepting_everything_expires_nothing(client) -> None:
    r = await client.post("/_gate/consent", json={"choice": "accept_all"}, headers=SELF | cookie_header("_ga", "_fbp"))
    assert expired(r) == {}


@pytest.mark.anyio
async def test_withdrawal_expires_them_and_deletes_gates_own_cookie(app, client) -> None:
    everything = ConsentCodec([KEY]).dumps(
        decide(app.state.gate.registries[None], app.state.gate.registries[None].refusable)
    )
    r = await client.delete("/_gate/consent", headers=SELF | cookie_header("_ga", "_fbp", "_fbc", consent=everything))
    assert r.json()["decided"] is False
    assert set(expired(r)) == {"_ga", "_fbp", "_fbc"}
    assert any(
        line.startswith(f"{COOKIE_NAME}=") and "Max-Age=0" in line.replace("max-age", "Max-Age")
        for line in r.headers.get_list("set-cookie")
    )


@pytest.mark.anyio
async def test_the_form_flow_expires_them_too(client) -> None:
    r = await client.post(
        "/_gate/consent",
        content="choice=reject_all&next=/jobs",
        headers=SELF | {"content-type": "application/x-www-form-urlencoded"} | cookie_header("_fbp"),
    )
    assert r.status_code == 303 and set(expired(r)) == {"_fbp"}


@pytest.mark.anyio
async def test_https_site_expires_with_secure() -> None:
    site = Site(upstream="http://origin.test", public_scheme="https")
    app = gate_app.create_app(gate_settings("http://origin.test", sites=(site,)))
    async with asgi_client(app, base_url="http://jobs.example.jp") as client:
        r = await client.post(
            "/_gate/consent",
            json={"choice": "reject_all"},
            headers={"origin": "https://jobs.example.jp"} | cookie_header("_fbp"),
        )
    lines = [line for line in r.headers.get_list("set-cookie") if line.startswith("_fbp=")]
    assert len(lines) == 3 and all(line.endswith("; Secure") for line in lines)


@pytest.mark.anyio
async def test_withdrawal_in_opt_out_mode_keeps_them_unless_gpc_refuses_advertising() -> None:
    site = Site(upstream="http://origin.test", mode="opt-out")
    app = gate_app.create_app(gate_settings("http://origin.test", sites=(site,)))
    async with asgi_client(app, base_url=HOST) as client:
        r = await client.delete("/_gate/consent", headers=SELF | cookie_header("_ga", "_fbp"))
        assert expired(r) == {}  # undecided in opt-out mode lets everything through
        r = await client.delete("/_gate/consent", headers=SELF | {"sec-gpc": "1"} | cookie_header("_ga", "_fbp"))
        assert set(expired(r)) == {"_fbp"}


@pytest.mark.anyio
async def test_a_site_that_does_not_carry_a_tag_expires_its_cookies(app) -> None:
    site = Site(upstream="http://origin.test", tags=("google.analytics",))
    app = gate_app.create_app(gate_settings("http://origin.test", sites=(site,)))
    async with asgi_client(app, base_url=HOST) as client:
        r = await client.post(
            "/_gate/consent", json={"choice": "accept_all"}, headers=SELF | cookie_header("_ga", "_fbp")
        )
    assert set(expired(r)) == {"_fbp"}  # the site never let Meta through, so its cookie is no one's
