"""The ledger: pages counted through the real proxy match the pages served, per consent, with path
templates and strip reasons; the request path only counts in memory, whatever the store does."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from gate.consent import decide, undecided
from gate.recording import ledger
from gate.recording.ledger import Counts, Expander, Ledger, PathTemplates
from gate.rewrite import Outcome
from gate.vendors import load

from . import store_support
from .conftest import asgi_client, gate_settings, serve
from .store_support import AUTH, consent_cookie, recording_app, token_query

pytestmark = pytest.mark.anyio
REGISTRY = load()
JOBS = ["dh-001", "dh-002", "dh-003", "dh-004", "dds-001", "dds-002"]  # the demo site's job ids

postgres_url = store_support.postgres_url  # a fixture
store_url = store_support.store_url  # a fixture


@pytest.mark.parametrize(
    ("templates", "path", "expected"),
    [
        ((), "/", "/"),
        ((), "/jobs/123", "/jobs/{id}"),
        ((), "/jobs/dental-hygienist", "/jobs/dental-hygienist"),
        ((), "/u/3f2a9c1e-77aa-4c1b-9c1e-0b1a2c3d4e5f/cv", "/u/{id}/cv"),
        ((), "/users/hanako@example.jp", "/users/{id}"),
        ((), "/c/a1b2c3d4", "/c/{id}"),
        ((), "/jobs/dh-001", "/jobs/{id}"),
        ((), "/v2/jobs", "/v2/jobs"),
        (("/companies/{slug}/jobs",), "/companies/sakura-dental/jobs", "/companies/{slug}/jobs"),
        (("/companies/{slug}/jobs",), "/companies/sakura-dental/about", "/companies/sakura-dental/about"),
    ],
    ids=[
        "root",
        "numeric-id",
        "words-kept",
        "uuid",
        "email",
        "hex",
        "demo-id",
        "one-digit-kept",
        "configured",
        "configured-miss",
    ],
)
def test_path_templates(templates, path, expected):
    assert PathTemplates(templates)(path) == expected


def expand(counts: Counts, **overrides: Any):
    conf = gate_settings("demo", **overrides)
    return Expander(conf, {None: REGISTRY}).expand(counts)


@pytest.mark.parametrize(
    ("consent", "tag", "reason"),
    [
        (undecided(REGISTRY), "facebook.pixel", "purpose:advertising"),
        (undecided(REGISTRY), "criteo.onetag", "purpose:advertising+suggestions"),
        (decide(REGISTRY, ["advertising"]), "criteo.onetag", "purpose:suggestions"),
        (decide(REGISTRY, REGISTRY.refusable, vendors_refused=["criteo"]), "criteo.onetag", "vendor:criteo"),
        (None, "criteo.onetag", "refused"),
    ],
    ids=["undecided", "two-purposes", "one-purpose-missing", "vendor-refused", "consent-unknown"],
)
def test_each_strip_says_why(consent, tag, reason):
    book = Ledger()
    book.page("*", "/jobs/1", consent, Outcome(stripped={tag}))
    rows = expand(book.take()).tags
    assert rows == {("*", ledger.day_text(ledger.today()), "/jobs/{id}", tag, "stripped", reason): 1}


def test_a_flood_of_distinct_paths_stays_bounded(monkeypatch):
    monkeypatch.setattr(ledger, "MAX_KEYS", 10)
    book = Ledger()
    for i in range(1000):
        book.page("*", f"/search-{i}", None, Outcome())
    counts = book.take()
    assert len(counts.pages) == 11 and sum(counts.pages.values()) == 1000
    assert expand(counts).pages[("*", ledger.day_text(ledger.today()), ledger.OTHER, 0, 0)] == 990


def test_examples_per_finding_are_bounded_in_a_batch():
    book = Ledger()
    for i in range(20):
        book.beacon("*", f"/p{i}", frozenset({"facebook.pixel"}), frozenset({"facebook.pixel"}), frozenset())
    b = expand(book.take())
    assert len(b.examples) == ledger.EXAMPLES
    assert sum(n for (_, _, kind, _), n in b.findings.items() if kind == "leak") == 20


# -- through the real proxy ---------------------------------------------------------------------
def report_json(base: str, want_pages: int, timeout: float = 15.0) -> dict:
    """The report, once it counts ``want_pages`` pages (the flusher runs every 0.1 s here)."""
    deadline = time.monotonic() + timeout
    data: dict = {}
    while time.monotonic() < deadline:
        data = httpx.get(base + "/_gate/report.json", headers=AUTH).json()
        if data["totals"]["pages"] >= want_pages:
            return data
        time.sleep(0.05)
    return data


def test_counts_through_the_real_proxy_match_the_pages_served(store_url):
    app = recording_app(store_url, flush_interval=0.1)
    accepted = consent_cookie(app, ["improvement"])  # Google Analytics only
    undecided_n, accepted_n = 7, 5
    with serve(app) as base:
        with httpx.Client(base_url=base) as visitor:
            for i in range(undecided_n):
                page = visitor.get(f"/jobs/{JOBS[i % len(JOBS)]}")
                assert page.status_code == 200 and "facebook.net" not in page.text
        with httpx.Client(base_url=base, cookies=accepted) as visitor:
            for i in range(accepted_n):
                assert "googletagmanager.com/gtag/js?id=G-" in visitor.get(f"/jobs/{JOBS[i % len(JOBS)]}").text
        data = report_json(base, undecided_n + accepted_n)
    totals = data["totals"]
    assert (totals["pages"], totals["banner_shown"]) == (undecided_n + accepted_n, undecided_n)
    tags = {row["tag"]: row for row in data["tags"]}
    assert tags["google.analytics"]["served"] == accepted_n
    assert tags["google.analytics"]["stripped"] == undecided_n
    assert tags["google.analytics"]["stripped_by"] == {"purpose:improvement": undecided_n}
    assert tags["facebook.pixel"]["served"] == 0
    assert tags["facebook.pixel"]["stripped"] == undecided_n + accepted_n
    assert tags["facebook.pixel"]["stripped_by"] == {"purpose:advertising": undecided_n + accepted_n}
    assert data["pages"] == [{"path": "/jobs/{id}", "pages": undecided_n + accepted_n}]


async def test_pages_are_served_while_the_store_is_down(tmp_path):
    """The request path never waits for the store: with no store at all, pages come and are counted."""
    (tmp_path / "file").write_text("a file where the store's folder should be")
    app = recording_app(str(tmp_path / "file" / "gate.sqlite3"))
    async with asgi_client(app) as client:
        assert app.state.gate.recorder.store is None
        started = time.perf_counter()
        for _ in range(5):
            assert (await client.get("/jobs/dh-001")).status_code == 200
        assert time.perf_counter() - started < 5
        assert await app.state.gate.recorder.flush() is False  # kept for the next try
        assert sum(app.state.gate.recorder.unwritten.pages.values()) == 5


async def test_recording_off_counts_nothing_and_injects_no_beacon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = recording_app("off")
    async with asgi_client(app) as client:
        page = await client.get("/jobs/dh-001")
        assert page.status_code == 200 and "beacon.js" not in page.text
        assert app.state.gate.recorder is None
        assert (await client.get("/_gate/report.json", headers=AUTH)).status_code == 404
    assert not (tmp_path / "gate-data").exists()


async def test_shutdown_flushes_what_was_counted(tmp_path):
    store = str(tmp_path / "gate.sqlite3")
    app = recording_app(store)  # flush interval: an hour
    async with asgi_client(app) as client:
        for _ in range(3):
            await client.get("/")
    from gate.recording.store import open_store

    reopened = open_store(store)
    try:
        assert sum(r[-1] for r in reopened.query("pages", "*", "2000-01-01", "2999-12-31")) == 3
    finally:
        reopened.close()


async def test_guard_and_csp_reports_count_as_attempted(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    report = {
        "csp-report": {
            "blocked-uri": "https://connect.facebook.net/en_US/fbevents.js",
            "document-uri": "http://gate.test/jobs/dh-001",
        }
    }
    stray = {"csp-report": {"blocked-uri": "https://cdn.example.org/x.js"}}
    async with asgi_client(app) as client:
        for body in (report, report, stray):
            r = await client.post(
                "/_gate/csp-report",
                json=body,
                params=token_query(app),  # one page view each
                headers={"origin": "http://gate.test", "content-type": "application/csp-report"},
            )
            assert r.status_code == 204
        await app.state.gate.recorder.flush()
        data = (await client.get("/_gate/report.json", headers=AUTH)).json()
    pixel = next(t for t in data["tags"] if t["tag"] == "facebook.pixel")
    assert pixel["attempted"] == 2 and pixel["attempted_by"] == {"csp": 2}
    assert [f["subject"] for f in data["findings"] if f["kind"] == "undeclared_host"] == ["cdn.example.org"]


async def test_the_store_is_only_ever_touched_off_the_event_loop(tmp_path, monkeypatch):
    """Pages, decisions and beacons count in memory; the store is written from a worker thread."""
    import threading

    from gate.recording.store import SqliteStore

    threads: list[str] = []
    original = SqliteStore.write

    def write(self, batch):
        threads.append(threading.current_thread().name)
        return original(self, batch)

    monkeypatch.setattr(SqliteStore, "write", write)
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    loop_thread = threading.current_thread().name
    async with asgi_client(app) as client:
        await client.get("/jobs/dh-001")
        await client.post("/_gate/consent", json={"choice": "accept_all"}, headers={"origin": "http://gate.test"})
        await app.state.gate.recorder.flush()
    assert threads and loop_thread not in threads
