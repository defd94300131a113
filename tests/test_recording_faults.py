"""Recording under faults: a store that hangs or is down, an answer lost after a commit, kill -9,
SIGTERM while the store hangs, a flood of distinct paths. Every wait here is bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest

from gate import api
from gate.recording import recorder as recorder_module
from gate.recording import store as store_module
from gate.recording.store import Batch, StoreError, open_store

from . import store_support
from .conftest import asgi_client
from .gate_process import gate_process
from .pg_relay import PgRelay
from .store_support import AUTH, SELF, TOKEN, recording_app
from .test_store import DAY, batch, pages_count

pytestmark = pytest.mark.anyio
FORM = {"content-type": "application/x-www-form-urlencoded"} | SELF

postgres_url = store_support.postgres_url  # a fixture
store_url = store_support.store_url  # a fixture


@pytest.fixture
def relay(postgres_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the journal of a PostgreSQL store goes to ./gate-data
    r = PgRelay(postgres_url)
    try:
        yield r
    finally:
        r.close()


def cid_of(app, response) -> str:
    return app.state.gate.codec.read(response.cookies.get("gate_consent"), app.state.gate.registries[None]).consent_id


# -- 5: a batch counts once, however often it is sent ----------------------------------------------
def test_a_batch_sent_twice_counts_once(store_url):
    store = open_store(store_url)
    try:
        b = batch(pages=7)
        store.write(b)
        store.write(b)  # an abandoned flush and the shutdown's flush, both with the same batch
        assert pages_count(store) == 7
    finally:
        store.close()


async def test_a_flush_whose_answer_was_lost_after_the_commit_is_not_counted_again(store_url):
    app = recording_app(store_url)
    async with asgi_client(app) as client:
        for i in range(6):
            assert (await client.get(f"/jobs/dh-00{i % 4 + 1}")).status_code == 200
        recorder = app.state.gate.recorder
        store = await recorder.open_store()
        write = store.write

        def committed_then_cut(b: Batch):
            write(b)
            raise StoreError("connection lost before the COMMIT's answer")

        store.write = committed_then_cut
        assert await recorder.flush() is False
        store.write = write
        recorder._retry_at = 0.0
        for _ in range(3):
            assert (await client.get("/")).status_code == 200
        assert await recorder.flush() is True
        assert pages_count(store) == 9  # 7,154 stored against 5,407 served, before


# -- 6: no store call hangs; SIGTERM with a hanging store exits in time, keeping every receipt ---------
async def test_a_hanging_store_gives_up_within_its_timeout(relay):
    app = recording_app(relay.url)
    async with asgi_client(app) as client:
        assert await app.state.gate.recorder.open_store() is not None
        relay.set("hang")
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        assert r.status_code == 303
        started = time.monotonic()
        with anyio.fail_after(20):  # before: hung for good
            assert await app.state.gate.recorder.flush() is False
            r = await client.get("/_gate/report.json", headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert time.monotonic() - started < 3 * store_module.TIMEOUT
        relay.set("relay")


def test_sigterm_while_the_store_hangs_exits_in_time_and_keeps_every_receipt(relay, postgres_url, tmp_path):
    (tmp_path / "gate.toml").write_text("flush_interval = 0.2\n")
    env = {
        "GATE_STORE": relay.url,
        "GATE_CONFIG": str(tmp_path / "gate.toml"),
        "GATE_REPORT_TOKEN": TOKEN,
        "GATE_TRUSTED_PROXIES": "127.0.0.1",
    }  # visitors behind a proxy: each under its decision limit
    cids: list[str] = []
    with gate_process(env=env) as gate:
        cwd = Path(os.readlink(f"/proc/{gate.process.pid}/cwd"))
        with httpx.Client(base_url=gate.url, timeout=10, headers={"origin": gate.url}) as client:
            for i in range(40):
                if i == 20:
                    time.sleep(0.5)
                    relay.set("hang")
                r = client.post(
                    "/_gate/consent", data={"choice": "accept_all"}, headers={"x-forwarded-for": f"198.51.100.{i}"}
                )
                assert r.status_code == 303
                cids.append(r.cookies["gate_consent"])

            def look_up() -> None:
                with contextlib.suppress(httpx.HTTPError):  # cut by the shutdown, or answered 503
                    httpx.get(f"{gate.url}/_gate/receipts/x", headers=AUTH, timeout=60)

            lookup = threading.Thread(target=look_up, daemon=True)
            lookup.start()  # a look-up that waits on the hanging store while gate drains
            time.sleep(1.0)
        started = time.monotonic()
        gate.process.send_signal(signal.SIGTERM)
        try:
            code = gate.process.wait(timeout=25)  # systemd's TimeoutStopSec is 30 s
        except Exception:
            code = None
        took = time.monotonic() - started
        spool = cwd / "gate-data" / "receipts-spool"
        spooled = [line for p in spool.glob("receipts-*") for line in p.read_text().splitlines()]
        assert code == 0, f"still running after {took:.1f} s:\n{gate.stderr[-2000:]}"
        assert took < 15, gate.stderr[-3000:]
    relay.set("relay")
    with psycopg.connect(postgres_url) as conn:
        stored = conn.execute("SELECT count(*) FROM gate_receipts").fetchone()[0]
    assert stored + len(spooled) >= 40 and len(spooled) >= 40 - stored


# -- 7: kill -9 loses no receipt a visitor was told about ------------------------------------------------
def consent_posts(url: str, n: int) -> None:
    """``n`` decisions, each from its own visitor behind a trusted proxy (each under its limit)."""
    with httpx.Client(base_url=url, timeout=10, headers={"origin": url}) as client:
        for i in range(n):
            r = client.post(
                "/_gate/consent", data={"choice": "reject_all"}, headers={"x-forwarded-for": f"198.51.100.{i % 250}"}
            )
            assert r.status_code == 303


def stored_receipts(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT count(*) FROM gate_receipts").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_9_loses_no_acknowledged_receipt(tmp_path):
    """The store is busy (another process holds its write lock) while visitors decide, then gate is
    killed: every receipt a visitor got a cookie for is in the store after the next start."""
    (tmp_path / "gate.toml").write_text("flush_interval = 0.2\n")
    db = tmp_path / "data" / "gate.sqlite3"
    env = {"GATE_STORE": str(db), "GATE_CONFIG": str(tmp_path / "gate.toml"), "GATE_TRUSTED_PROXIES": "127.0.0.1"}
    with gate_process(env=env) as gate:
        consent_posts(gate.url, 10)
        deadline = time.monotonic() + 10
        while stored_receipts(db) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # a long backup, a vacuum: the store takes no write for now
        try:
            consent_posts(gate.url, 30)
            os.kill(gate.process.pid, signal.SIGKILL)
            gate.process.wait(timeout=10)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    with gate_process(env=env):  # the next start writes what the journal holds
        deadline = time.monotonic() + 15
        while stored_receipts(db) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored_receipts(db) == 40  # before: 10 (65 of 5,053 under load)


# -- 9: store outages -------------------------------------------------------------------------------
async def test_a_store_outage_answers_503_and_still_finds_waiting_receipts(relay):
    app = recording_app(relay.url)
    async with asgi_client(app) as client:
        assert await app.state.gate.recorder.open_store() is not None  # connected
        relay.set("refuse")
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        assert r.status_code == 303
        cid = cid_of(app, r)
        r = await client.get(f"/_gate/receipts/{cid}", headers=AUTH)
        assert r.status_code == 200 and [x["choice"] for x in r.json()["receipts"]] == ["accept_all"]
        r = await client.get("/_gate/receipts/nobody", headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"]
        r = await client.get("/_gate/report.json", headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"]


async def test_receipts_during_an_outage_do_not_reconnect_each_time(relay, monkeypatch):
    monkeypatch.setattr(api, "CONSENT_BURST", 1000.0, raising=False)  # 60 decisions from one address
    app = recording_app(relay.url)
    async with asgi_client(app) as client:
        assert await app.state.gate.recorder.open_store() is not None
        relay.set("refuse")
        before = relay.accepted
        started = time.monotonic()
        for _ in range(60):
            assert (await client.post("/_gate/consent", content="choice=reject_all", headers=FORM)).status_code == 303
            await anyio.sleep(0.05)
        elapsed = time.monotonic() - started
        reconnects = relay.accepted - before
        assert reconnects <= 2 + elapsed, reconnects  # back-off 1, 2, 4 … s; before: one per receipt


async def test_at_the_bound_a_decision_is_refused_not_acknowledged(relay, monkeypatch):
    monkeypatch.setattr(recorder_module, "MAX_PENDING_RECEIPTS", 5, raising=False)
    monkeypatch.setattr(recorder_module, "MAX_QUEUED_RECEIPTS", 5, raising=False)
    app = recording_app(relay.url)
    async with asgi_client(app) as client:
        relay.set("refuse")
        cids = []
        for _ in range(5):
            r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
            assert r.status_code == 303
            cids.append(cid_of(app, r))
            client.cookies.clear()
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        assert r.status_code == 503 and r.headers["retry-after"] and "set-cookie" not in r.headers
        for cid in cids:  # every acknowledged one is kept
            assert (await client.get(f"/_gate/receipts/{cid}", headers=AUTH)).status_code == 200


# -- 10: distinct paths per site and day are bounded -------------------------------------------------
def test_distinct_paths_per_site_and_day_are_bounded(store_url):
    bound = getattr(store_module, "MAX_PATHS", 500)
    store = open_store(store_url)
    try:
        for start in (0, 1500):  # two flushes
            b = Batch()
            for i in range(start, start + 1500):
                b.pages[("*", DAY, f"/article/{chr(97 + i % 26)}{i}", 1, 0)] = 1
                b.tags[("*", DAY, f"/article/{chr(97 + i % 26)}{i}", "facebook.pixel", "stripped", "refused")] = 1
            store.write(b)
        paths = dict(store.query("paths", "*", DAY, DAY))
        assert len(paths) <= bound + 1 and sum(paths.values()) == 3000  # nothing uncounted
        assert paths.get("(other)") == 3000 - bound
    finally:
        store.close()
