"""The consent-derived CSP: which hosts it allows for which consent, how it sits next to the origin's
own policy, and /_gate/csp-report counting what pages attempted per vendor or undeclared host."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import respx

from gate import app as gate_app
from gate import csp, settings
from gate.consent import COOKIE_NAME, ConsentCodec, decide
from gate.errors import ConfigError
from gate.settings import Site

from .conftest import KEY, asgi_client, gate_settings, policy_registry

REGISTRY = policy_registry()
ALL = frozenset(REGISTRY.tags)
GOOGLE = frozenset(t for t in ALL if t.startswith("google."))
SITE = Site(upstream="http://origin.test")
NONE_POLICY = (
    "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; style-src * 'unsafe-inline' data: blob:; "
    "font-src * data:; report-uri /_gate/csp-report"
)


def sources(allowed: frozenset[str]) -> set[str]:
    return set(csp.host_list(REGISTRY, allowed).split())


# -- the policy -----------------------------------------------------------------------------------
def test_nothing_accepted_allows_only_the_site_itself():
    assert csp.policy(SITE, REGISTRY, frozenset()) == NONE_POLICY


def test_the_sites_declared_hosts_come_after_self():
    site = Site(upstream="http://origin.test", csp_hosts=("cdn.example.jp", "*.example.jp"))
    assert csp.policy(site, REGISTRY, frozenset()).startswith(
        "default-src 'self' cdn.example.jp *.example.jp 'unsafe-inline'"
    )


@pytest.mark.parametrize(
    ("allowed", "present", "absent"),
    [
        (
            frozenset({"google.analytics"}),
            {"www.googletagmanager.com", "google-analytics.com", "*.google-analytics.com", "stats.g.doubleclick.net"},
            {"googletagmanager.com", "doubleclick.net", "googleadservices.com", "facebook.net"},
        ),
        # A host shared with a refused tag is allowed when ANY accepted tag uses it: Google Ads' gtag.js.
        (
            frozenset({"google.ads"}),
            {"www.googletagmanager.com", "googleadservices.com", "www.google.com/pagead/"},
            {"google-analytics.com", "googletagmanager.com"},
        ),
        # Every Google tag accepted: the vendor's domains too (an unclaimed URL there is all its tags).
        (GOOGLE, {"googletagmanager.com", "*.googletagmanager.com", "doubleclick.net", "2mdn.net"}, {"criteo.com"}),
        # By label: facebook.net covers connect.facebook.net, so the latter is not listed again.
        (
            frozenset({"facebook.pixel"}),
            {"facebook.net", "*.facebook.net", "facebook.com", "*.facebook.com"},
            {"connect.facebook.net", "www.facebook.com", "www.googletagmanager.com"},
        ),
    ],
    ids=["analytics", "ads-shares-gtm-host", "all-google", "meta"],
)
def test_accepted_tags_hosts_and_only_those(allowed, present, absent):
    got = sources(allowed)
    assert present <= got and not absent & got


def test_every_source_is_a_valid_host_source():
    valid = re.compile(r"^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+(/[a-z0-9/._-]*)?$")
    assert all(valid.match(s) for s in sources(ALL)), sources(ALL)


def test_nonce_replaces_unsafe_inline():
    policy = csp.policy(SITE, REGISTRY, frozenset(), nonce="abc")
    assert "'nonce-abc'" in policy and "'unsafe-inline' 'unsafe-eval'" not in policy
    assert "style-src * 'unsafe-inline'" in policy  # styles are not what consent is about


def test_policy_stays_small_with_everything_accepted():
    # nginx's default proxy_buffer_size (4 KB) holds all of a response's headers.
    assert len(csp.policy(SITE, REGISTRY, ALL)) < 1200


@pytest.mark.parametrize(
    ("mode", "origin", "names"),
    [
        ("off", "http://jobs.example.jp", []),
        ("report-only", "http://jobs.example.jp", [b"content-security-policy-report-only"]),
        ("enforce", "http://jobs.example.jp", [b"content-security-policy"]),
        ("report-only", "https://jobs.example.jp", [b"content-security-policy-report-only", b"reporting-endpoints"]),
    ],
)
def test_headers_per_mode(mode, origin, names):
    site = Site(upstream="http://origin.test", csp=mode)
    headers = csp.response_headers(site, REGISTRY, frozenset(), None, origin)
    assert [k for k, _ in headers] == names
    if names:
        policy = headers[0][1].decode()
        # report-to only where the Reporting API can deliver: Chromium drops report-uri once it is there.
        assert ("report-to gate-csp" in policy) is origin.startswith("https")
    if b"reporting-endpoints" in names:
        assert headers[1][1] == b'gate-csp="https://jobs.example.jp/_gate/csp-report"'


@pytest.mark.parametrize("value", [["cdn.example.jp"], ["*.example.jp"], ["https://api.example.jp:8443/v1/"]])
def test_csp_hosts_setting(tmp_path, value):
    conf = tmp_path / "gate.toml"
    conf.write_text(f"[[site]]\nupstream = 'demo'\ncsp_hosts = {json.dumps(value)}\n")
    assert settings.load({"config": str(conf)}, {}).sites[0].csp_hosts == tuple(value)


@pytest.mark.parametrize(
    "value", ['"cdn.example.jp"', '["cdn.example.jp; script-src *"]', "['a b']", "[\"'self'\"]", "[1]"]
)
def test_csp_hosts_cannot_end_the_directive(tmp_path, value):
    conf = tmp_path / "gate.toml"
    conf.write_text(f"[[site]]\nupstream = 'demo'\ncsp_hosts = {value}\n")
    with pytest.raises(ConfigError, match=r"site\[0\]\.csp_hosts"):
        settings.load({"config": str(conf)}, {})


# -- on the wire ----------------------------------------------------------------------------------
PAGE = b"<!doctype html><html><head></head><body>x</body></html>"


async def fetch(
    headers: dict[str, str] | None = None,
    site: Site | None = None,
    accepted=None,
    content_type: str = "text/html; charset=utf-8",
) -> httpx.Response:
    conf = gate_settings("http://origin.test", sites=(site or SITE,))
    app = gate_app.create_app(conf)
    request_headers = {}
    if accepted is not None:
        request_headers["cookie"] = (
            f"{COOKIE_NAME}={ConsentCodec([KEY]).dumps(decide(app.state.gate.registries[None], accepted))}"
        )
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="origin.test").mock(
            return_value=httpx.Response(200, headers={"content-type": content_type, **(headers or {})}, content=PAGE)
        )
        async with asgi_client(app) as client:
            return await client.get("/", headers=request_headers)


@pytest.mark.anyio
async def test_a_page_gets_a_report_only_policy_by_default():
    r = await fetch()
    assert r.headers["content-security-policy-report-only"].startswith(NONE_POLICY + "?t=")  # the page's token
    assert "content-security-policy" not in r.headers


@pytest.mark.anyio
async def test_the_policy_follows_the_visitors_consent():
    r = await fetch(accepted=["improvement"])
    assert "www.googletagmanager.com" in r.headers["content-security-policy-report-only"]


@pytest.mark.anyio
async def test_enforce_adds_a_second_policy_and_never_touches_the_origins():
    origin_policy = "default-src 'self'; script-src 'self' 'nonce-r4nd0m'"
    r = await fetch({"content-security-policy": origin_policy}, Site(upstream="http://origin.test", csp="enforce"))
    policies = r.headers.get_list("content-security-policy")
    assert policies[0] == origin_policy and len(policies) == 2
    assert "'nonce-r4nd0m'" in policies[1] and "'unsafe-inline' 'unsafe-eval'" not in policies[1]


@pytest.mark.anyio
async def test_report_only_keeps_the_origins_report_only_policy_too():
    r = await fetch({"content-security-policy-report-only": "img-src 'self'"})
    assert r.headers.get_list("content-security-policy-report-only")[0] == "img-src 'self'"
    assert len(r.headers.get_list("content-security-policy-report-only")) == 2


@pytest.mark.anyio
async def test_off_sends_nothing_and_anything_but_a_page_gets_no_policy():
    r = await fetch(site=Site(upstream="http://origin.test", csp="off"))
    assert not any(k.startswith("content-security-policy") for k in r.headers)
    r = await fetch(content_type="application/json")
    assert not any(k.startswith("content-security-policy") for k in r.headers)


# -- reports --------------------------------------------------------------------------------------
SELF = {"origin": "http://gate.test"}
CSP_REPORT = {"content-type": "application/csp-report"} | SELF
REPORTS = {"content-type": "application/reports+json"} | SELF


def csp_report(blocked: str) -> bytes:
    return json.dumps(
        {
            "csp-report": {
                "document-uri": "http://gate.test/",
                "violated-directive": "script-src-elem",
                "blocked-uri": blocked,
                "disposition": "report",
            }
        }
    ).encode()


def reports(*blocked: str, source: str = "") -> bytes:
    return json.dumps(
        [
            {
                "type": "csp-violation",
                "url": "http://gate.test/",
                "body": {"blockedURL": b, "effectiveDirective": "img-src", "sourceFile": source},
            }
            for b in blocked
        ]
    ).encode()


@pytest.fixture
def app():
    return gate_app.create_app(gate_settings("http://origin.test"))


def report_path(app, site: str = "*", page: str = "/") -> str:
    """/_gate/csp-report with the token of a page gate served (as its report-uri says)."""
    return f"/_gate/csp-report?t={app.state.gate.page_tokens.mint(site, page)}"


@pytest.mark.anyio
async def test_reports_count_as_attempted_per_vendor_or_undeclared_host(app):
    async with asgi_client(app) as client:
        r = await client.post(
            report_path(app), content=csp_report("https://connect.facebook.net/en_US/fbevents.js"), headers=CSP_REPORT
        )
        assert r.status_code == 204 and r.headers["cache-control"] == "no-store"
        await client.post(
            report_path(app),
            headers=REPORTS,
            content=reports("https://www.facebook.com/tr", "https://tracker.example.org/p.gif", source="gate-guard"),
        )
        for skipped in ("inline", "eval", "data", ""):
            await client.post(report_path(app), content=csp_report(skipped), headers=CSP_REPORT)
    counts = app.state.gate.attempts.attempted_counts()
    assert counts == {
        csp.Attempt("", "facebook", "connect.facebook.net", "csp"): 1,
        csp.Attempt("", "facebook", "www.facebook.com", "guard"): 1,
        csp.Attempt("", "", "tracker.example.org", "guard"): 1,
    }
    assert app.state.gate.attempts.by_vendor() == {"facebook": 2, "": 1}


@pytest.mark.anyio
async def test_a_url_on_a_shared_host_counts_for_its_vendor_once(app):
    async with asgi_client(app) as client:
        await client.post(
            report_path(app), content=csp_report("https://www.googletagmanager.com/gtm.js?id=GTM-X"), headers=CSP_REPORT
        )
    assert app.state.gate.attempts.by_vendor() == {"google": 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/csp-report", "origin": "https://evil.example"}, csp_report("x"), 403),
        ({"content-type": "application/csp-report"}, csp_report("x"), 403),  # neither Origin nor Referer
        (CSP_REPORT, b"{" + b" " * (20 * 1024) + b"}", 413),
        ({"content-type": "text/plain"} | SELF, csp_report("x"), 415),
        (CSP_REPORT, b"not json", 204),  # a broken report is nothing to count, and no error
        (REPORTS, b'{"not": "a list"}', 204),
    ],
    ids=["cross-site", "no-origin", "too-big", "wrong-type", "garbage", "wrong-shape"],
)
async def test_report_endpoint_refuses_what_is_not_the_sites_own_report(app, headers, body, status):
    async with asgi_client(app) as client:
        r = await client.post(report_path(app), content=body, headers=headers)
    assert r.status_code == status
    assert app.state.gate.attempts.attempted_counts() == {}


@pytest.mark.anyio
async def test_a_referer_from_the_site_is_enough(app):
    async with asgi_client(app) as client:
        r = await client.post(
            report_path(app),
            content=csp_report("https://www.facebook.com/tr"),
            headers={"content-type": "application/csp-report", "referer": "http://gate.test/jobs"},
        )
    assert r.status_code == 204 and app.state.gate.attempts.by_vendor() == {"facebook": 1}


def test_attempts_are_bounded_and_listeners_hear_each_one():
    attempts = csp.Attempts(max_keys=2)
    heard: list[csp.Attempt] = []
    attempts.subscribe(heard.append)
    attempts.subscribe(lambda a: 1 / 0)  # a broken listener loses nothing
    for host in ("a.example", "b.example", "c.example", "d.example"):
        attempts.record(csp.Attempt("", "", host, "csp"))
    attempts.record(csp.Attempt("", "facebook", "x1.facebook.com", "csp"))  # the vendor still counts
    counts = attempts.attempted_counts()
    assert counts[csp.Attempt("", "", "(other)", "csp")] == 2
    assert counts[csp.Attempt("", "facebook", "(other)", "csp")] == 1
    assert len(counts) == 4
    assert [a.host for a in heard] == ["a.example", "b.example", "(other)", "(other)", "(other)"]
