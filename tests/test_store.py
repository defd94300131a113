"""The store: created on first run, migrated, shared by processes, same answers from SQLite and
PostgreSQL, and a crash loses at most the last flush interval."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from gate.recording.store import MIGRATIONS, SCHEMA_VERSION, Batch, Receipt, StoreError, mask_url, open_store

from . import store_support
from .gate_process import gate_process

ROOT = Path(__file__).resolve().parent.parent
DAY = "2025-04-01"

postgres_url = store_support.postgres_url  # a fixture
store_url = store_support.store_url  # a fixture


def batch(pages: int = 1, **extra: dict) -> Batch:
    b = Batch()
    b.pages[("*", DAY, "/jobs/{id}", 1, 0)] = pages
    b.tags[("*", DAY, "/jobs/{id}", "facebook.pixel", "stripped", "purpose:advertising")] = pages
    for name, rows in extra.items():
        getattr(b, name).update(rows)
    return b


def receipt(rid: str, consent_id: str = "c1", at: int = 1_700_000_000) -> Receipt:
    return Receipt(rid, consent_id, at, "*", "v1", "accept_all", "advertising,improvement", "", "", "banner", "/")


def pages_count(store, site: str = "*") -> int:
    return sum(r[-1] for r in store.query("pages", site, "2000-01-01", "2999-12-31"))


# -- one store ---------------------------------------------------------------------------------------
def test_sqlite_store_is_created_on_first_run_in_wal_mode(tmp_path):
    path = tmp_path / "not" / "yet" / "gate.sqlite3"
    store = open_store(str(path))
    try:
        assert path.exists() and store.schema_version() == SCHEMA_VERSION
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_counts_add_up_across_writes(store_url):
    store = open_store(store_url)
    try:
        store.write(batch(3))
        store.write(batch(4))
        assert pages_count(store) == 7
        assert store.query("tags", "*", DAY, DAY) == [(DAY, "facebook.pixel", "stripped", "purpose:advertising", 7)]
    finally:
        store.close()


def test_a_retried_receipt_is_stored_once(store_url):
    store = open_store(store_url)
    try:
        store.write(Batch(receipts=[receipt("r1"), receipt("r2")]))
        store.write(Batch(receipts=[receipt("r1")]))  # the batch was written, but its success was not seen
        assert [r.rid for r in store.receipts_for("c1")] == ["r1", "r2"]
    finally:
        store.close()


def test_examples_are_bounded_per_finding(store_url):
    store = open_store(store_url)
    try:
        for i in range(12):
            store.write(
                Batch(
                    examples={
                        ("*", "leak", "facebook.pixel", f"/p{i}"): DAY,
                        ("*", "leak", "criteo.onetag", f"/q{i}"): DAY,
                    }
                )
            )
        found = store.examples("*")
        assert sum(1 for e in found if e[1] == "facebook.pixel") == 5
        assert sum(1 for e in found if e[1] == "criteo.onetag") == 5
    finally:
        store.close()


def test_retention_drops_old_days_and_receipts(store_url):
    store = open_store(store_url)
    try:
        old = batch(2)
        old.pages[("*", "2024-01-01", "/", 1, 0)] = 5
        store.write(old)
        store.write(Batch(receipts=[receipt("old", at=100), receipt("new", at=2_000_000_000)]))
        store.prune("2025-01-01", 1_000_000_000)
        assert pages_count(store) == 2
        assert [r.rid for r in store.receipts_between(0, 2**62)] == ["new"]
    finally:
        store.close()


def test_receipts_between_pages_through_many(store_url):
    store = open_store(store_url)
    try:
        store.write(Batch(receipts=[receipt(f"r{i:04d}", at=1000 + i // 3) for i in range(50)]))
        got = list(store.receipts_between(1001, 1010, page=7))
        assert [r.rid for r in got] == [f"r{i:04d}" for i in range(3, 30)]
    finally:
        store.close()


# -- the schema --------------------------------------------------------------------------------------
def test_an_older_schema_is_migrated_and_keeps_its_data(tmp_path):
    path = tmp_path / "gate.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE gate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO gate_meta VALUES ('schema_version', '1')")
    conn.execute(f"INSERT INTO gate_pages VALUES ('*', '{DAY}', '/', 1, 0, 41)")
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        assert store.schema_version() == SCHEMA_VERSION == 4
        store.write(Batch(receipts=[receipt("r1")]))
        assert pages_count(store) == 41 and len(store.receipts_for("c1")) == 1
    finally:
        store.close()


def test_a_store_with_batch_ids_gains_the_receipt_fields_and_keeps_its_receipts(tmp_path):
    """A store written by gate with batch ids (schema 3) but before issue 11's receipt fields: both
    migrations apply in order, the old receipt reads back with empty new fields, and a new one keeps them."""
    path = tmp_path / "gate.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE gate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for migration in MIGRATIONS[:3]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("INSERT INTO gate_meta VALUES ('schema_version', '3')")
    conn.execute(
        "INSERT INTO gate_receipts VALUES ('r0', 'c1', 1700000000, '*', 'v1', 'reject_all', '',"
        " 'advertising', '', 'banner', '/')"
    )
    conn.execute("INSERT INTO gate_batches VALUES ('b0', 1700000000)")
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        assert store.schema_version() == SCHEMA_VERSION == 4
        store.write(
            Batch(receipts=[Receipt(**receipt("r1").as_dict() | {"lang": "en", "gpc": 1, "personal_data": "google"})])
        )
        old, new = sorted(store.receipts_for("c1"), key=lambda r: r.rid)
    finally:
        store.close()
    assert (old.choice, old.text_hash, old.lang, old.gpc, old.personal_data) == ("reject_all", "", "", 0, "")
    assert (new.lang, new.gpc, new.personal_data) == ("en", 1, "google")


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "gate.sqlite3"
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE gate_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        open_store(str(path))


def test_an_unwritable_store_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        open_store(str(tmp_path / "file" / "gate.sqlite3"))


def test_unreachable_postgresql_is_a_store_error_without_the_password():
    with pytest.raises(StoreError) as e:
        open_store("postgresql://gate:s3cret@127.0.0.1:1/gate")
    assert "s3cret" not in str(e.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://gate:s3cret@db.internal:5432/gate", "postgresql://gate:***@db.internal:5432/gate"),
        ("postgresql://gate@db.internal/gate", "postgresql://gate@db.internal/gate"),
        ("gate-data/gate.sqlite3", "gate-data/gate.sqlite3"),
    ],
    ids=["password-hidden", "no-password", "sqlite-path"],
)
def test_mask_url(url, shown):
    assert mask_url(url) == shown


# -- several processes -------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from gate.recording.store import Batch, open_store
    store = open_store(sys.argv[1])
    for i in range(int(sys.argv[2])):
        b = Batch()
        b.pages[("*", "2025-04-01", "/", 1, 0)] = 1
        b.pages[("*", "2025-04-01", "/p" + sys.argv[3], 0, 0)] = 2
        store.write(b)
    store.close()
""")


def assert_all_exit_cleanly(procs: list[subprocess.Popen]) -> None:
    """Every writer process exits 0 within a minute; none is left running whatever happens."""
    try:
        assert [p.wait(timeout=60) for p in procs] == [0] * len(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_two_processes_share_one_store_and_counts_add_up(store_url):
    open_store(store_url).close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, store_url, "150", str(i)], cwd=ROOT) for i in range(2)]
    assert_all_exit_cleanly(writers)
    store = open_store(store_url)
    try:
        rows = store.query("paths", "*", DAY, DAY)
        assert dict(rows) == {"/": 300, "/p0": 300, "/p1": 300}
    finally:
        store.close()


def test_two_processes_migrating_a_new_store_at_once(store_url):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, store_url, "5", str(i)], cwd=ROOT) for i in range(3)]
    assert_all_exit_cleanly(writers)
    store = open_store(store_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION and dict(store.query("paths", "*", DAY, DAY))["/"] == 15
    finally:
        store.close()


def served_pages(url: str, n: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(n):
            assert client.get(f"/jobs/{i + 1}").status_code in (200, 404)


def wait_for_pages(store_url: str, n: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    found = -1
    while time.monotonic() < deadline:
        store = open_store(store_url)
        try:
            found = pages_count(store)
        finally:
            store.close()
        if found >= n:
            return found
        time.sleep(0.1)
    return found


def test_a_crash_loses_at_most_the_last_flush_interval(store_url, tmp_path):
    """SIGKILL gate right after a flush, and again in the middle of an interval: whatever was flushed
    survives; only what was counted since the last flush can be lost. A restart on the same store works."""
    interval = 0.3
    (tmp_path / "gate.toml").write_text(f"flush_interval = {interval}\n")
    env = {"GATE_STORE": store_url, "GATE_CONFIG": str(tmp_path / "gate.toml")}
    with gate_process(env=env) as gate:
        served_pages(gate.url, 20)
        assert wait_for_pages(store_url, 20) == 20  # flushed within the interval
        served_pages(gate.url, 7)  # counted, maybe not yet flushed...
        os.kill(gate.process.pid, signal.SIGKILL)  # ...and gone without a shutdown
        gate.process.wait(timeout=10)
    store = open_store(store_url)
    try:
        survived = pages_count(store)
    finally:
        store.close()
    assert 20 <= survived <= 27
    with gate_process(env=env) as gate:  # the store opens again after the crash and keeps counting
        served_pages(gate.url, 5)
        assert wait_for_pages(store_url, survived + 5) == survived + 5
