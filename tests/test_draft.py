"""`gate init URL`: a bounded crawl of the origin (links and sitemap.xml, same origin only) and a gate.toml
draft that declares exactly the tags the pages carried; and what gate serve says when a site declares none."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from gate import cli
from gate.app import create_app
from gate.errors import ConfigError
from gate.settings import Site

from .conftest import KEY, gate_settings, serve

GA = '<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC123"></script>'
PIXEL = '<script async src="https://connect.facebook.net/en_US/fbevents.js"></script>'
CRITEO = '<script async src="https://static.criteo.net/js/ld/ld.js"></script>'


def page(head: str = "", body: str = "") -> str:
    return f"<!doctype html><html><head><title>求人</title>{head}</head><body>{body}</body></html>"


PAGES = {
    "/": page(
        GA,
        '<a href="/jobs/1">求人</a> <a href="https://elsewhere.example/x">外部</a> <a href="/cv.pdf">PDF</a>'
        ' <img src="https://cdn.other.example/logo.png">'
        ' <footer><a href="/legal/p">プライバシーポリシー</a></footer>',
    ),
    "/jobs/1": page(PIXEL, '<a href="/">top</a> <a href="/jobs/1#apply">応募</a>'),
    "/legal/p": page(body="<h1>プライバシーポリシー</h1>"),
    "/only-in-sitemap": page(CRITEO),
}
SITEMAP = (
    "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
    "<url><loc>{base}/</loc></url><url><loc>{base}/only-in-sitemap</loc></url>"
    "<url><loc>https://elsewhere.example/sitemapped</loc></url></urlset>"
)


def site_app(pages: dict[str, str], asked: list[str]) -> Starlette:
    async def any_page(request: Request) -> Response:
        path = request.url.path
        asked.append(path)
        if path == "/sitemap.xml":
            base = f"{request.url.scheme}://{request.url.netloc}"
            if "/" not in pages:
                return Response(status_code=404)
            return Response(SITEMAP.format(base=base), media_type="application/xml")
        if path == "/cv.pdf":
            return Response(b"%PDF-1.4", media_type="application/pdf")
        if path in pages:
            return HTMLResponse(pages[path])
        return PlainTextResponse("not found", 404)

    return Starlette(routes=[Route("/{path:path}", any_page)])


def init(url: str, out: Path, *flags: str) -> int:
    return cli.main(["init", url, "--output", str(out), *flags])


def test_the_draft_declares_what_the_pages_carried(tmp_path, capsys):
    asked: list[str] = []
    out = tmp_path / "gate.toml"
    with serve(site_app(PAGES, asked)) as origin:
        assert init(origin + "/", out) == 0
    printed = capsys.readouterr().out
    conf, registry = cli.load_all({"config": str(out)}, {"GATE_SECRET_KEY": KEY})  # `gate check` accepts it
    [site] = conf.sites
    assert site.upstream == origin
    assert sorted(site.vendors or ()) == ["criteo", "facebook", "google"]
    assert sorted(site.tags or ()) == ["criteo.onetag", "facebook.pixel", "google.analytics"]
    assert site.policy_url == "/legal/p"
    text = out.read_text(encoding="utf-8")
    assert '# "cdn.other.example" = ""  # reason: …' in text  # listed, commented: the operator decides
    assert "elsewhere.example" not in text and "/sitemapped" not in asked  # never left the origin
    assert asked.count("/jobs/1") == 1 and "/cv.pdf" in asked  # fragment-only links are one page
    assert "Tags found: 3" in printed and "wrote " in printed


def test_a_site_without_tags_names_no_recipient_with_its_draft(tmp_path, capsys):
    """The point of the draft: a site carrying no tag is no longer said to send to every vendor."""
    pages = {"/": page(body='<a href="/about">about</a>'), "/about": page(body="<p>会社概要</p>")}
    out = tmp_path / "gate.toml"
    with serve(site_app(pages, [])) as origin:
        assert init(origin, out) == 0
        assert "2 page(s) read" in capsys.readouterr().out  # "/" once, though the start URL has no path
        conf, registry = cli.load_all({"config": str(out)}, {"GATE_SECRET_KEY": KEY, "GATE_STORE": "off"})
        assert conf.sites[0].vendors == () and conf.sites[0].tags == ()
        with serve(create_app(conf)) as public:
            shown = httpx.get(public + "/about").text
            notice = httpx.get(public + "/_gate/notice").text
        without = dataclasses.replace(conf, sites=(Site(upstream=origin),))  # what it said before the draft
        with serve(create_app(without)) as public:
            before = httpx.get(public + "/_gate/notice").text
    # before: every vendor a site carries when it names none (the five the policy names)
    recipients = [v.recipient for v in registry.vendors.values() if v.carried_by_default]
    assert len(recipients) == 5 and all(r in before for r in recipients)
    assert not any(r in shown or r in notice for r in recipients)


def test_the_crawl_stops_at_its_page_limit(tmp_path, capsys):
    asked: list[str] = []
    with serve(site_app(PAGES, asked)) as origin:
        assert init(origin + "/", tmp_path / "gate.toml", "--max-pages", "2") == 0
    assert len([p for p in asked if p != "/sitemap.xml"]) == 2
    assert "stopped at the page limit (2)" in capsys.readouterr().out


def test_a_url_gate_fronts_is_refused_in_one_line(tmp_path, capsys):
    with serve(site_app(PAGES, [])) as origin, serve(create_app(gate_settings(origin))) as public:
        assert init(public + "/", tmp_path / "gate.toml") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "served through gate" in err and not (tmp_path / "gate.toml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example.jp/"], "expected the site's http:// or https:// URL"),
        (["http://127.0.0.1:9/", "--max-pages", "0"], "--max-pages: expected a number > 0"),
        (["http://127.0.0.1:9/"], "cannot fetch"),
    ],
    ids=["not-http", "no-pages", "unreachable"],
)
def test_init_mistakes_are_one_line(tmp_path, capsys, args, message):
    assert cli.main(["init", *args, "--output", str(tmp_path / "gate.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_an_existing_file_is_kept_without_force(tmp_path, capsys):
    out = tmp_path / "gate.toml"
    out.write_text("# mine\n", encoding="utf-8")
    assert init("http://127.0.0.1:9/", out) == 2
    assert "exists already" in capsys.readouterr().err and out.read_text(encoding="utf-8") == "# mine\n"


def test_the_drafted_allow_hosts_once_reasoned_keeps_those_hosts_and_strips_the_rest(tmp_path, capsys):
    """Issue 11.2: the draft lists the undeclared hosts as allow_hosts (what undeclared = "strip" reads),
    each with a reason to write. Uncommented with reasons, gate check takes it and gate keeps those
    hosts' loads; a host the draft did not name is stripped."""
    pages = {
        "/": page(
            body='<img src="https://cdn.other.example/logo.png"> <a href="/jobs">求人</a>'
            ' <iframe src="https://maps.embed.example/m"></iframe>'
        ),
        "/jobs": page(body='<img src="https://px.tracker.example/p.gif" width=1 height=1>'),
    }
    out = tmp_path / "gate.toml"
    with serve(site_app(pages, [])) as origin:
        assert init(origin + "/", out) == 0
        text = out.read_text(encoding="utf-8")
        assert 'undeclared = "strip"' in text and "# [site.allow_hosts]" in text
        drafted = [ln for ln in text.splitlines() if ln.startswith('# "')]
        assert [ln.split('"')[1] for ln in drafted] == ["cdn.other.example", "maps.embed.example", "px.tracker.example"]
        assert all("# reason: …" in ln for ln in drafted)
        # the operator keeps the CDN and the map with their reasons and leaves the tracker out
        kept = {"cdn.other.example": "our images", "maps.embed.example": "the office map"}
        filled = text.replace("# [site.allow_hosts]", "[site.allow_hosts]")
        for host, why in kept.items():
            filled = filled.replace(f'# "{host}" = ""', f'"{host}" = "{why}"')
        out.write_text(filled, encoding="utf-8")
        conf, _ = cli.load_all({"config": str(out)}, {"GATE_SECRET_KEY": KEY, "GATE_STORE": "off"})
        assert dict(conf.sites[0].allow_hosts) == kept
        with serve(create_app(conf)) as public:
            top, jobs = httpx.get(public + "/").text, httpx.get(public + "/jobs").text
    assert "cdn.other.example/logo.png" in top and "maps.embed.example/m" in top
    assert "px.tracker.example" not in jobs
    # left empty, a reason is refused in one line
    out.write_text(text.replace("# [site.allow_hosts]", "[site.allow_hosts]").replace('# "cdn', '"cdn'), "utf-8")
    with pytest.raises(ConfigError, match="allow_hosts"):
        cli.load_all({"config": str(out)}, {"GATE_SECRET_KEY": KEY, "GATE_STORE": "off"})
