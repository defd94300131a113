"""The report: only with the token, never cached, self-contained HTML in Japanese and English, and the
same numbers in HTML, CSV, JSON and `gate report` (from SQLite and PostgreSQL alike)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gate.recording.report import day_range, text_table

from . import store_support
from .conftest import asgi_client
from .store_support import AUTH, SELF, TOKEN, consent_cookie, recording_app, token_query

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
GUARDED = ["/_gate/report", "/_gate/report.csv", "/_gate/report.json", "/_gate/metrics", "/_gate/receipts/some-id"]
TEXT = {"content-type": "text/plain"}

postgres_url = store_support.postgres_url  # a fixture
store_url = store_support.store_url  # a fixture


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def traffic(app, client) -> None:
    """Pages under three consents, decisions, beacons: something in every table."""
    for _ in range(3):
        await client.get("/jobs/dh-001")
    client.cookies.update(consent_cookie(app, ["improvement"]))
    for _ in range(2):
        await client.get("/jobs/dh-002")
    client.cookies.clear()
    await client.post("/_gate/consent", json={"choice": "accept_all"}, headers=SELF)
    await client.post("/_gate/consent", json={"purposes": {"advertising": True}}, headers=SELF)
    await client.post(
        "/_gate/beacon",
        content=json.dumps({"v": 1, "page": "/", "hosts": ["connect.facebook.net"]}),
        headers=SELF | TEXT,
        params=token_query(app, "/"),
    )
    client.cookies.clear()
    await client.post(
        "/_gate/beacon",
        content=json.dumps({"v": 1, "page": "/x", "hosts": ["criteo.com", "cdn.example.org"]}),
        headers=SELF | TEXT,
        params=token_query(app, "/x"),
    )
    await app.state.gate.recorder.flush()


# -- who may read it ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", GUARDED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-0123456789"},
        basic("x", "wrong"),
        {"authorization": "Basic !!!"},
        {"authorization": TOKEN},
    ],
    ids=["none", "wrong-bearer", "wrong-basic", "garbled-basic", "no-scheme"],
)
async def test_no_token_no_report(tmp_path, path, headers):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        r = await client.get(path, headers=headers)
    assert r.status_code == 401 and r.headers["cache-control"] == "no-store"
    assert any(c.startswith('Basic realm="gate report"') for c in r.headers.get_list("www-authenticate"))


async def test_no_configured_token_locks_the_report(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"), report_token=None)
    async with asgi_client(app) as client:
        for headers in ({}, {"authorization": "Bearer "}, basic("", "")):
            assert (await client.get("/_gate/report.json", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "headers", [AUTH, basic("marketing", TOKEN), basic("", TOKEN)], ids=["bearer", "basic", "basic-no-user"]
)
async def test_the_token_opens_it_and_nothing_is_cached(tmp_path, headers):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        for path in GUARDED[:4]:
            r = await client.get(path, headers=headers)
            assert r.status_code == 200 and r.headers["cache-control"] == "no-store", path


# -- the page ---------------------------------------------------------------------------------------------
async def test_the_page_is_self_contained_with_inline_svg_charts(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        await traffic(app, client)
        r = await client.get("/_gate/report", headers=AUTH)
    html = r.text
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert html.count("<svg") == 3 and "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing loaded from elsewhere
    assert '<html lang="ja">' in html and "すべて同意" in html and "漏れ" in html
    assert "connect.facebook.net" not in html  # hosts are counted as tags, not listed; unknown ones are:
    assert "cdn.example.org" in html and "/jobs/{id}" in html


async def test_the_page_speaks_english_when_asked(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        await traffic(app, client)
        by_header = await client.get("/_gate/report", headers=AUTH | {"accept-language": "en-US,en;q=0.9"})
        by_query = await client.get("/_gate/report?gate_lang=en", headers=AUTH)
    for r in (by_header, by_query):
        assert '<html lang="en">' in r.text and "Field leak" in r.text and "Accept all" in r.text


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("site=nope.example", 400),
        ("since=yesterday", 400),
        ("since=2025-02-01&until=2025-01-01", 400),
        ("since=2000-01-01&until=2025-01-01", 400),
        ("since=7d", 200),
        ("since=2025-01-01&until=2025-01-31", 200),
    ],
    ids=["unknown-site", "bad-since", "reversed", "too-long", "relative", "dates"],
)
async def test_range_and_site_are_checked(tmp_path, query, status):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        assert (await client.get(f"/_gate/report.json?{query}", headers=AUTH)).status_code == status


# -- the same numbers everywhere ----------------------------------------------------------------------------
def from_csv(text: str) -> dict[tuple[str, ...], int]:
    sums: dict[tuple[str, ...], int] = {}
    for row in csv.DictReader(io.StringIO(text)):
        key = (row["table"], row["key"], row["detail"])
        sums[key] = sums.get(key, 0) + int(row["count"])
    return sums


async def test_csv_and_json_give_the_same_numbers(store_url):
    app = recording_app(store_url)
    async with asgi_client(app) as client:
        await traffic(app, client)
        data = (await client.get("/_gate/report.json", headers=AUTH)).json()
        sheet = await client.get("/_gate/report.csv", headers=AUTH)
    assert sheet.headers["content-type"].startswith("text/csv") and "attachment" in sheet.headers["content-disposition"]
    rows = from_csv(sheet.text)

    def total(table: str, key: str | None = None, detail: str | None = None) -> int:
        return sum(
            n
            for (t, k, d), n in rows.items()
            if t == table and key in (None, k) and (detail is None or d == detail or d.startswith(detail + ":"))
        )

    t = data["totals"]
    assert (t["pages"], t["banner_shown"]) == (total("pages"), total("pages", "banner_shown")) == (5, 3)
    for tag in data["tags"]:
        for outcome in ("served", "stripped", "fired", "attempted"):
            assert tag[outcome] == total("tags", tag["tag"], outcome), (tag["tag"], outcome)
    for choice, d in data["decisions"].items():
        assert d["total"] == total("decisions", choice)
    for p in data["purposes"]:
        assert (p["accepted"], p["refused"]) == (
            total("purposes", p["purpose"], "accepted"),
            total("purposes", p["purpose"], "refused"),
        )
    for f in data["findings"]:
        assert f["count"] == total("findings", f["kind"], f["subject"])
    assert t["beacons"] == total("findings", "beacons") == 2
    # facebook.net with advertising accepted fired as it should; criteo.com without consent leaked
    assert t["field_leaks"] == 1 and t["undeclared_hosts"] == 1
    assert data["decisions"]["accept_all"]["total"] == 1 and data["decisions"]["custom"]["total"] == 1
    pixel = next(r for r in data["tags"] if r["tag"] == "facebook.pixel")
    assert (pixel["served"], pixel["stripped"], pixel["fired"], pixel["fire_rate"]) == (0, 5, 1, None)
    ga = next(r for r in data["tags"] if r["tag"] == "google.analytics")
    assert (ga["served"], ga["stripped"]) == (2, 3) and ga["stripped_by"] == {"purpose:improvement": 3}
    assert {p["purpose"]: p["rate"] for p in data["purposes"]}["advertising"] == 1.0


# -- in a terminal ------------------------------------------------------------------------------------------
def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


async def test_gate_report_prints_the_same_numbers(store_url):
    app = recording_app(store_url)
    async with asgi_client(app) as client:
        await traffic(app, client)
        data = (await client.get("/_gate/report.json", params={"since": "7d"}, headers=AUTH)).json()
    table = gate("report", "--since", "7d", "--store", store_url)
    assert table.returncode == 0, table.stderr
    assert "\x1b[" not in table.stdout  # piped: plain text
    line = next(x for x in table.stdout.splitlines() if x.startswith("google.analytics "))
    assert line.split()[:3] == ["google.analytics", "2", "3"]
    as_json = gate("report", "--since", "7d", "--format", "json", "--store", store_url)
    assert json.loads(as_json.stdout)["totals"] == data["totals"]
    as_csv = gate("report", "--since", "7d", "--format", "csv", "--store", store_url)
    assert as_csv.stdout.startswith("site,day,table,key,detail,count\n") and "facebook.pixel" in as_csv.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "nope.example"], "gate: --site: expected one of *, got 'nope.example'"),
        (["--since", "last week"], "gate: --since: expected a date such as 2025-04-01 or a number of days such as 7d"),
    ],
    ids=["unknown-site", "bad-since"],
)
def test_gate_report_mistakes_are_one_line(tmp_path, args, message):
    done = gate("report", *args, "--store", str(tmp_path / "gate.sqlite3"))
    assert done.returncode == 2 and done.stderr.startswith(message) and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, ("2025-03-03", "2025-04-01")),
        ("7d", None, ("2025-03-26", "2025-04-01")),
        ("1d", None, ("2025-04-01", "2025-04-01")),
        ("2025-01-01", "2025-01-31", ("2025-01-01", "2025-01-31")),
    ],
    ids=["default-30-days", "7d-includes-today", "1d-is-today", "dates"],
)
def test_day_range(since, until, expected):
    assert day_range(since, until, today=dt.date(2025, 4, 1)) == expected


def test_text_table_aligns_numbers_right():
    assert text_table(["tag", "served"], [["a.b", 5], ["c", 120]]).splitlines() == [
        "tag  served",
        "---  ------",
        "a.b       5",
        "c       120",
    ]


# -- the charts ---------------------------------------------------------------------------------------------
def decisions_chart(per_day: list[int]) -> str:
    from gate.recording.report_page import TEXT, _decisions

    days = [{"day": f"2026-12-0{i + 1}", "decisions": {"accept_all": n}} for i, n in enumerate(per_day)]
    data = {
        "days": days,
        "decisions": {c: {"total": 0, "by_method": {}} for c in ("accept_all", "custom", "reject_all", "withdraw")},
    }
    return _decisions(data, TEXT["en"])


@pytest.mark.parametrize(
    "per_day", [[2], [1, 1], [3], [0, 7], [12, 3], [101]], ids=["two", "one-a-day", "three", "seven", "twelve", "101"]
)
def test_consent_chart_axis_has_whole_distinct_labels_and_bars_end_on_their_count(per_day):
    svg = decisions_chart(per_day)
    axis = [
        (float(y) - 4, int(v)) for y, v in re.findall(r'<text x="40" y="([\d.]+)" text-anchor="end">(\d+)</text>', svg)
    ]
    labels = [v for _, v in axis]
    assert labels == sorted(set(labels)) and labels[0] == 0 and labels[-1] >= max(per_day), labels
    y_of = {v: y for y, v in axis}
    scale = (y_of[0] - y_of[labels[-1]]) / labels[-1]  # pixels per decision, read off the axis
    for y, v in axis:  # each label sits where its count is
        assert abs((y_of[0] - y) - v * scale) < 0.2, (v, axis)
    for n in per_day:
        if n:
            m = re.search(
                rf'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="[^"]+">'
                rf"<title>[^<]*: {n}</title>",
                svg,
            )
            assert m and abs(float(m.group(2)) - n * scale) < 0.2, (n, m and m.groups(), scale)


async def test_no_consent_rate_for_a_purpose_no_banner_offered(tmp_path):
    """No tag the demo site carries is for "content": the banner never asked, so no rate is shown."""
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        await client.post("/_gate/consent", json={"choice": "accept_all"}, headers=SELF)
        await client.post("/_gate/consent", json={"choice": "reject_all"}, headers=SELF)
        await app.state.gate.recorder.flush()
        data = (await client.get("/_gate/report.json", headers=AUTH)).json()
        page = (await client.get("/_gate/report", params={"lang": "en"}, headers=AUTH)).text
    rates = {p["purpose"]: p["rate"] for p in data["purposes"]}
    assert "content" not in rates and rates["advertising"] == 0.5
    assert "Delivering content" not in page.split("Consent rate per purpose")[-1].split("</figure>")[0]
