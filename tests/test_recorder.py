"""The flusher (gate/recording/recorder.py), as an operator or a visitor notices it: a receipt reaches
the store soon after the decision, whatever the flush interval; a store that is down or failing loses
no receipt and no count, and stores each once when it is back; what a shutdown could not write is
spooled and written at the next start; a decision whose receipt cannot be kept is refused, not
acknowledged; retention never drops a receipt while its cookie can still be alive.

Faults with a real PostgreSQL in the way (hangs, lost answers, kill -9, SIGTERM) are in
tests/test_recording_faults.py; what a receipt holds and how it is looked up, in tests/test_receipts.py."""

from __future__ import annotations

import time

import anyio
import pytest

from gate.recording.store import Batch, Receipt, StoreError

from . import store_support
from .conftest import asgi_client
from .store_support import SELF, recording_app

pytestmark = pytest.mark.anyio
FORM = {"content-type": "application/x-www-form-urlencoded"} | SELF

store_url = store_support.store_url  # a fixture
postgres_url = store_support.postgres_url  # a fixture (store_url's PostgreSQL half)


def consent_id(app, response) -> str:
    value = response.cookies.get("gate_consent")
    return app.state.gate.codec.read(value, app.state.gate.registries[None]).consent_id


def pages_count(store) -> int:
    return sum(r[-1] for r in store.query("pages", "*", "2000-01-01", "2999-12-31"))


async def test_a_receipt_reaches_the_store_soon_though_the_flush_interval_is_an_hour(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"), flush_interval=3600.0)
    async with asgi_client(app) as client:
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        assert r.status_code == 303
        cid, recorder, found = consent_id(app, r), app.state.gate.recorder, []
        with anyio.move_on_after(10):  # bounded: the flusher is woken by the receipt, not by the hour
            while not found:
                await anyio.sleep(0.05)
                if recorder.store is not None:
                    found = await recorder.call(recorder.store.receipts_for, cid)
        assert [x.choice for x in found] == ["accept_all"]


async def test_a_failing_store_loses_no_receipt_or_count_and_stores_each_once_when_back(store_url):
    app = recording_app(store_url)
    async with asgi_client(app) as client:
        recorder = app.state.gate.recorder
        store = await recorder.open_store()
        write, down = store.write, [True]

        def failing(batch: Batch) -> bool:
            if down[0]:
                raise StoreError("the store is down")
            return write(batch)

        store.write = failing
        cids = []
        for choice in ("accept_all", "reject_all", "accept_all"):  # three flushes fail, one batch each
            client.cookies.clear()
            r = await client.post("/_gate/consent", content=f"choice={choice}", headers=FORM)
            assert r.status_code == 303 and "gate_consent=" in r.headers["set-cookie"]  # never waits for it
            cids.append(consent_id(app, r))
            assert (await client.get("/jobs/dh-001")).status_code == 200
            assert await recorder.flush() is False
            recorder._retry_at = 0.0  # the back-off is over: the next flush tries again
        down[0] = False
        assert await recorder.flush() is True
        stored = [await recorder.call(store.receipts_for, cid) for cid in cids]
        assert [[x.choice for x in s] for s in stored] == [["accept_all"], ["reject_all"], ["accept_all"]]
        assert await recorder.call(pages_count, store) == 3
        assert not recorder.unstored and not recorder.pending
        assert not list(recorder.spool_dir.glob("receipts-*"))  # written: the journal files are gone


async def test_the_cookie_is_set_while_the_store_is_down_and_the_receipt_follows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the journal of a PostgreSQL store goes
    app = recording_app("postgresql://gate@127.0.0.1:1/gate")  # nothing listens there
    async with asgi_client(app) as client:
        r = await client.post("/_gate/consent", content="choice=reject_all", headers=FORM)
        assert r.status_code == 303 and "gate_consent=" in r.headers["set-cookie"]
        recorder = app.state.gate.recorder
        assert await recorder.flush() is False and len(recorder.unwritten.receipts) == 1  # queued
        assert await recorder.flush() is False and len(recorder.unwritten.receipts) == 1  # retried, kept once
        recorder.where = str(tmp_path / "back" / "gate.sqlite3")  # the store comes back...
        recorder._retry_at = 0.0  # ...and its back-off is over
        assert await recorder.flush() is True
        assert [r.choice for r in recorder.store.receipts_for(consent_id(app, r))] == ["reject_all"]


async def test_receipts_left_at_shutdown_are_spooled_then_written_at_the_next_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    down = recording_app("postgresql://gate@127.0.0.1:1/gate")  # nothing listens there
    async with asgi_client(down) as client:
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        cid = consent_id(down, r)
    spooled = list((tmp_path / "gate-data" / "receipts-spool").glob("receipts-*.jsonl"))
    assert len(spooled) == 1 and cid in spooled[0].read_text()
    up = recording_app("gate-data/gate.sqlite3")  # its spool is the same folder
    async with asgi_client(up):
        assert await up.state.gate.recorder.flush()
        assert [r.choice for r in up.state.gate.recorder.store.receipts_for(cid)] == ["accept_all"]
    assert not list((tmp_path / "gate-data" / "receipts-spool").iterdir())


async def test_a_decision_whose_receipt_cannot_be_journaled_is_refused_not_acknowledged(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    blocker = tmp_path / "receipts-spool"  # where the journal goes: a file there, not a folder
    blocker.write_text("")
    async with asgi_client(app) as client:
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        assert r.status_code == 503 and r.headers["retry-after"] and "set-cookie" not in r.headers
        blocker.unlink()  # writable again: the next decision is kept
        r = await client.post("/_gate/consent", content="choice=accept_all", headers=FORM)
        assert r.status_code == 303 and "gate_consent=" in r.headers["set-cookie"]


async def test_retention_keeps_a_receipt_while_its_cookie_can_live(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"), retention_days=1, consent_max_age_days=30)
    now = int(time.time())
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 10 * 86400))

    def receipt(rid: str, days_ago: int) -> Receipt:
        return Receipt(
            rid, f"c-{rid}", now - days_ago * 86400, "*", "v", "accept_all", "improvement", "", "", "api", ""
        )

    async with asgi_client(app) as client:
        recorder = app.state.gate.recorder
        store = await recorder.open_store()
        old = Batch(receipts=[receipt("young", 20), receipt("old", 40)])
        old.pages[("*", day, "/jobs/{id}", 1, 0)] = 4  # counts of ten days ago: past retention_days
        await recorder.call(store.write, old)
        assert (await client.get("/")).status_code == 200  # something to flush, and the flush prunes
        assert await recorder.flush() is True
        assert [r.rid for r in await recorder.call(store.receipts_for, "c-young")] == ["young"]  # 20 < 30 + 1 days
        assert await recorder.call(store.receipts_for, "c-old") == []  # its cookie has expired
        assert await recorder.call(pages_count, store) == 1  # today's page; the old counts are gone
