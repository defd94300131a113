"""Trusted proxies: X-Forwarded-For/-Proto/-Host are believed from configured front proxies only; from
anyone else they are dropped, so a visitor cannot spoof the scheme (Secure cookies, Origin checks,
Location), the Host (routing) or the address the origin sees."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import settings, upstream
from gate.consent import COOKIE_NAME
from gate.errors import ConfigError
from gate.forwarded import TrustedProxies, resolve
from gate.settings import Site

from .conftest import CLIENT_IP, KEY, asgi_client, gate_settings

ORIGIN = "http://origin.test"
EDGE = "10.0.0.5"  # a load balancer
PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"])
SPOOF = {"x-forwarded-for": "192.0.2.66", "x-forwarded-proto": "https", "x-forwarded-host": "evil.example"}


# -- the walk ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("xff", "visitor", "chain"),
    [
        ([], EDGE, [EDGE]),
        (["198.51.100.9"], "198.51.100.9", ["198.51.100.9", EDGE]),
        (["192.0.2.66", "198.51.100.9"], "198.51.100.9", ["198.51.100.9", EDGE]),  # the visitor's own claim goes
        (["198.51.100.9", "10.1.2.3"], "198.51.100.9", ["198.51.100.9", "10.1.2.3", EDGE]),  # two trusted hops
        (["10.9.9.9", "10.1.2.3"], "10.9.9.9", ["10.9.9.9", "10.1.2.3", EDGE]),  # all trusted: the leftmost
        (["unknown", "198.51.100.9"], "198.51.100.9", ["198.51.100.9", EDGE]),
        (["198.51.100.9", "not-an-ip"], EDGE, [EDGE]),  # garbage from a proxy: see no further than that proxy
        (["[2001:db8:1::7]:443"], "2001:db8:1::7", ["2001:db8:1::7", EDGE]),
        (["198.51.100.9:5555"], "198.51.100.9", ["198.51.100.9", EDGE]),
    ],
    ids=[
        "none",
        "one",
        "spoofed-left",
        "two-hops",
        "all-trusted",
        "unknown-left",
        "garbage-right",
        "ipv6-port",
        "ipv4-port",
    ],
)
def test_forwarded_for_is_walked_right_to_left_skipping_trusted_hops(xff, visitor, chain):
    assert PROXIES.client(EDGE, xff) == (visitor, chain)


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        ("10.200.0.1", True),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::ffff:10.0.0.1", True),
        ("2001:db8::1", True),
        ("203.0.113.7", False),
        ("", False),
        ("localhost", False),
    ],
)
def test_trusts_only_the_configured_networks(address, trusted):
    assert PROXIES.trusts(address) is trusted


def scope(peer: str, headers: dict[str, str], host: str = "gate.test") -> dict:
    raw = [(b"host", host.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "scheme": "http", "client": (peer, 40000), "headers": raw}


def test_from_an_untrusted_peer_forwarded_headers_are_dropped():
    s = scope(CLIENT_IP, SPOOF | {"forwarded": "for=192.0.2.66;proto=https"})
    resolve(s, PROXIES)
    assert s["client"] == (CLIENT_IP, 40000) and s["scheme"] == "http"
    assert s["headers"] == [(b"host", b"gate.test")]
    assert s["gate.forwarded_for"] == [CLIENT_IP]


def test_from_a_trusted_peer_the_request_is_the_visitors():
    s = scope(
        EDGE,
        {
            "x-forwarded-for": "192.0.2.66, 198.51.100.9",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "jobs.example.jp",
        },
        host="gate.internal:8080",
    )
    resolve(s, PROXIES)
    assert s["client"] == ("198.51.100.9", 0) and s["scheme"] == "https"
    assert s["headers"] == [(b"host", b"jobs.example.jp")]
    assert s["gate.forwarded_for"] == ["198.51.100.9", EDGE]


@pytest.mark.parametrize(
    ("headers", "scheme", "host"),
    [
        ({"x-forwarded-proto": "gopher"}, "http", b"gate.test"),
        ({"x-forwarded-proto": "http, https"}, "https", b"gate.test"),  # the nearest proxy's word
        ({"x-forwarded-host": "a.example/evil path"}, "http", b"gate.test"),
        ({"x-forwarded-host": "jobs.example.jp:8443"}, "http", b"jobs.example.jp:8443"),
    ],
    ids=["bad-proto", "appended-proto", "bad-host", "host-with-port"],
)
def test_odd_values_from_a_trusted_proxy(headers, scheme, host):
    s = scope(EDGE, headers)
    resolve(s, PROXIES)
    assert s["scheme"] == scheme and dict(s["headers"])[b"host"] == host


# -- settings ---------------------------------------------------------------------------------
def test_trusted_proxies_default_to_none():
    assert settings.load({}, {}).trusted_proxies == ()


def test_trusted_proxies_from_the_environment_and_the_file(tmp_path):
    conf = settings.load({}, {"GATE_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1 ,::1"})
    assert conf.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "::1/128")
    toml = tmp_path / "gate.toml"
    toml.write_text('trusted_proxies = ["192.168.0.0/16"]\n', encoding="utf-8")
    assert settings.load({"config": str(toml)}, {}).trusted_proxies == ("192.168.0.0/16",)
    assert settings.load({"config": str(toml)}, {"GATE_TRUSTED_PROXIES": "10.0.0.1"}).trusted_proxies == (
        "10.0.0.1/32",
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            "10.0.0.0/33",
            (
                "environment: GATE_TRUSTED_PROXIES: expected an IP address or network such as 10.0.0.0/8, "
                "got '10.0.0.0/33'"
            ),
        ),
        ("*", "environment: GATE_TRUSTED_PROXIES: expected an IP address or network such as 10.0.0.0/8, got '*'"),
    ],
)
def test_a_bad_trusted_proxy_is_one_line(env, expected):
    with pytest.raises(ConfigError) as e:
        settings.load({}, {"GATE_TRUSTED_PROXIES": env})
    assert str(e.value) == expected


# -- through the app: spoofing from an untrusted peer does not work ------------------------------
def cookie_of(response: httpx.Response) -> str:
    (line,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME + "=")]
    return line


async def consent_post(conf, headers: dict[str, str]) -> httpx.Response:
    async with asgi_client(gate_app.create_app(conf)) as client:
        return await client.post("/_gate/consent", data={"choice": "reject_all"}, headers=headers)


@pytest.mark.anyio
async def test_spoofed_proto_from_an_untrusted_peer_changes_nothing():
    r = await consent_post(gate_settings(ORIGIN), SPOOF | {"origin": "https://evil.example"})
    assert r.status_code == 403  # the public origin is still http://gate.test
    r = await consent_post(gate_settings(ORIGIN), SPOOF | {"origin": "http://gate.test"})
    assert r.status_code == 303 and "secure" not in cookie_of(r).lower()


@pytest.mark.anyio
async def test_trusted_proxys_proto_makes_cookies_secure():
    conf = gate_settings(ORIGIN, trusted_proxies=("203.0.113.0/24",))  # CLIENT_IP is the proxy here
    r = await consent_post(conf, {"x-forwarded-proto": "https", "origin": "https://gate.test"})
    assert r.status_code == 303 and "secure" in cookie_of(r).lower()


@pytest.mark.anyio
async def test_site_public_scheme_beats_the_request():
    conf = gate_settings(ORIGIN, trusted_proxies=("203.0.113.0/24",))
    conf = dataclasses.replace(conf, sites=(Site(upstream=ORIGIN, public_scheme="https"),))
    r = await consent_post(conf, {"x-forwarded-proto": "http", "origin": "https://gate.test"})
    assert r.status_code == 303 and "secure" in cookie_of(r).lower()


async def origin_sees(conf, headers: dict[str, str], host: str = "gate.test") -> httpx.Response | httpx.Request:
    app = gate_app.create_app(conf)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(host="origin.test").mock(
            return_value=httpx.Response(302, headers={"location": "http://origin.test/next"})
        )
        async with asgi_client(app) as client:
            r = await client.get("/jobs?q=1", headers=headers | {"host": host})
    if not route.called:
        return r
    sent = route.calls.last.request
    sent.extensions["gate_response"] = r
    return sent


@pytest.mark.anyio
async def test_the_origin_never_sees_a_spoofed_address_scheme_or_host():
    sent = await origin_sees(gate_settings(ORIGIN), SPOOF)
    assert isinstance(sent, httpx.Request)
    assert sent.headers["x-forwarded-for"] == CLIENT_IP
    assert sent.headers["x-forwarded-proto"] == "http" and sent.headers["x-forwarded-host"] == "gate.test"
    assert sent.headers.get_list("forwarded") == [f"for={CLIENT_IP};host=gate.test;proto=http"]
    assert sent.headers["host"] == "gate.test"
    assert sent.extensions["gate_response"].headers["location"] == "http://gate.test/next"


@pytest.mark.anyio
async def test_a_spoofed_forwarded_header_never_reaches_the_origin():
    sent = await origin_sees(gate_settings(ORIGIN), {"forwarded": "for=192.0.2.66;host=evil.example;proto=https"})
    assert isinstance(sent, httpx.Request)
    assert sent.headers.get_list("forwarded") == [f"for={CLIENT_IP};host=gate.test;proto=http"]


@pytest.mark.anyio
async def test_the_origin_sees_what_the_trusted_proxy_said():
    conf = gate_settings(ORIGIN, trusted_proxies=("203.0.113.0/24",))
    sent = await origin_sees(
        conf,
        {
            "x-forwarded-for": "192.0.2.66, 198.51.100.9",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "jobs.example.jp",
        },
        host="gate.internal",
    )
    assert isinstance(sent, httpx.Request)
    assert sent.headers["x-forwarded-for"] == f"198.51.100.9, {CLIENT_IP}"
    assert sent.headers["x-forwarded-proto"] == "https" and sent.headers["x-forwarded-host"] == "jobs.example.jp"
    assert sent.headers["host"] == "jobs.example.jp"  # the Host the visitor asked for, not gate's
    assert sent.headers["forwarded"] == f"for=198.51.100.9;host=jobs.example.jp;proto=https, for={CLIENT_IP}"
    assert sent.extensions["gate_response"].headers["location"] == "https://jobs.example.jp/next"


@pytest.mark.parametrize(
    ("chain", "host", "expected"),
    [
        (["2001:db8::1"], "jobs.example.jp:8443", 'for="[2001:db8::1]";host="jobs.example.jp:8443";proto=https'),
        ([], "jobs.example.jp", "host=jobs.example.jp;proto=https"),
    ],
    ids=["ipv6-and-port-quoted", "no-peer"],
)
def test_forwarded_header_quotes_what_is_not_a_token(chain, host, expected):
    assert upstream.forwarded_header(chain, "https", host) == expected


@pytest.mark.anyio
async def test_spoofed_host_does_not_route_but_a_trusted_one_does():
    conf = gate_settings(ORIGIN, keys=KEY)
    conf = dataclasses.replace(conf, sites=(Site(upstream=ORIGIN, host="jobs.example.jp"),))
    r = await origin_sees(conf, {"x-forwarded-host": "jobs.example.jp"})
    assert isinstance(r, httpx.Response) and r.status_code == 421
    trusted = dataclasses.replace(conf, trusted_proxies=("203.0.113.7",))
    sent = await origin_sees(trusted, {"x-forwarded-host": "jobs.example.jp"})
    assert isinstance(sent, httpx.Request) and sent.headers["x-forwarded-host"] == "jobs.example.jp"
