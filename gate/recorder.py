"""The flusher: owns the ledger's counts, the queue of receipts and the store, for one gate process.

``await start(app)`` and ``await stop(app)`` from the lifespan. In between, a background task flushes
every ``flush_interval`` seconds, and soon after each receipt is queued (a receipt should not wait for
the interval). The store is only ever touched from a worker thread. When it is slow or down, the batch
(receipts included) is kept and retried at the next flush; the visitor's cookie never waited for it.
At shutdown gate flushes once more; receipts the store still cannot take go to a spool file beside the
store (``receipts-spool/``), read back and written at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from . import metrics
from .ledger import Expander, Ledger, record_attempt
from .settings import Settings
from .store import OFF, Batch, Receipt, Store, StoreError, is_postgres, open_store

log = logging.getLogger("gate.recorder")

MAX_QUEUED_RECEIPTS = 100_000  # past this (the store down for very long), the oldest are dropped, loudly
STOP_TIMEOUT = 10.0
PRUNE_EVERY = 6 * 3600


class Recorder:
    def __init__(self, settings: Settings, registries: dict) -> None:
        self.settings = settings
        self.where = settings.store
        self.interval = settings.flush_interval
        self.ledger = Ledger()
        self.expander = Expander(settings, registries)
        self.receipts: deque[Receipt] = deque()
        self.store: Store | None = None
        self.unwritten = Batch()  # counted, not yet in the store: retried with the next flush
        self.spool_dir = spool_dir(settings.store)
        self._claimed: list[Path] = []
        self._opening = threading.Lock()
        self._pruned_at = 0.0
        self._failures = 0
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None

    # -- life ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start-up never waits for the store: the flusher opens it (and retries) in the background."""
        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        self._read_spool()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gate-ledger-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        written = False
        with anyio.move_on_after(STOP_TIMEOUT):
            written = await self.flush()
        if not written:
            self._write_spool()
        if written or self.store is None:
            await anyio.to_thread.run_sync(self._close)

    def queue_receipt(self, receipt: Receipt) -> None:
        """Called on the request path: no I/O, the flusher wakes up for it."""
        self.receipts.append(receipt)
        if len(self.receipts) > MAX_QUEUED_RECEIPTS:
            dropped = self.receipts.popleft()
            log.error("receipt queue full (store unreachable for long): dropped receipt %s", dropped.rid)
        if self._wake is not None:
            self._wake.set()

    async def open_store(self) -> Store | None:
        """The store, opened now if it is not yet (None while it cannot be)."""
        if self.store is None:
            await anyio.to_thread.run_sync(self._open)
        return self.store

    async def check_store(self) -> None:
        """For /_gate/readyz: the store answers a query within 2 s (the report and the receipts need
        it; a decision is never lost meanwhile, its receipt waits in the queue)."""
        assert self._lock is not None
        with anyio.fail_after(2):
            async with self._lock:
                store = await self.open_store()
                if store is None:
                    raise ConnectionError("the store cannot be opened")
                await anyio.to_thread.run_sync(store.schema_version)

    async def find_receipts(self, consent_id: str) -> list[Receipt]:
        """One consent's receipts: stored, and still queued (a look-up must not miss a receipt in flight)."""
        assert self._lock is not None
        async with self._lock:  # no flush half-way: every receipt is in the store or in a queue
            store = await self.open_store()
            found = await anyio.to_thread.run_sync(store.receipts_for, consent_id) if store is not None else []
            seen = {r.rid for r in found}
            found += [r for r in [*self.unwritten.receipts, *self.receipts]
                      if r.consent_id == consent_id and r.rid not in seen]
        return found

    async def _run(self) -> None:
        assert self._wake is not None
        await self.open_store()
        while True:
            with anyio.move_on_after(self.interval):
                await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the loop must outlive any one bad batch
                log.exception("flush failed")

    async def flush(self) -> bool:
        """Write everything counted and queued so far; True when the store took it all."""
        assert self._lock is not None
        async with self._lock:
            counts = self.ledger.take()
            receipts = list(self.receipts)
            self.receipts.clear()
            return await anyio.to_thread.run_sync(self._write, counts, receipts, abandon_on_cancel=True)

    # -- in the worker thread -------------------------------------------------------------------------
    def _open(self) -> bool:
        with self._opening:  # the flusher and a report may both ask first
            if self.store is None:
                try:
                    self.store = open_store(self.where)
                except StoreError as e:
                    self._failed(e)
                    return False
        return True

    def _close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _write(self, counts: Any, receipts: list[Receipt]) -> bool:
        batch = self.expander.expand(counts)
        batch.receipts = receipts
        metrics.observe(batch, counts.upstream_seconds, counts.rewrite_seconds)  # once, written or not
        self.unwritten.merge(batch)
        if not self.unwritten or not self._open():
            return not self.unwritten
        assert self.store is not None
        try:
            self.store.write(self.unwritten)
            self._prune()
        except StoreError as e:
            self._failed(e)
            return False
        self.unwritten = Batch()
        if self._failures:
            log.warning("store %s writable again", self.store.where if is_postgres(self.where) else self.where)
            self._failures = 0
        for path in self._claimed:
            path.unlink(missing_ok=True)
        self._claimed = []
        return True

    def _failed(self, error: StoreError) -> None:
        metrics.STORE_FAILURES.inc()
        self._failures += 1
        if self._failures in (1, 10) or self._failures % 100 == 0:  # loud at first, then not every few seconds
            log.error("store unavailable (%d failed flushes, %d receipts waiting; retrying): %s",
                      self._failures, len(self.unwritten.receipts), error)

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned_at < PRUNE_EVERY or self.store is None:
            return
        self._pruned_at = now
        days = self.settings.retention_days
        # A receipt proves a consent for as long as its cookie can live (13 months at most).
        receipt_days = max(days, min(self.settings.consent_max_age_days, 403) + 1)
        self.store.prune(time.strftime("%Y-%m-%d", time.gmtime(now - days * 86400)), int(now - receipt_days * 86400))

    # -- the spool ----------------------------------------------------------------------------------
    def _write_spool(self) -> None:
        receipts = [*self.unwritten.receipts, *self.receipts]
        if not receipts:
            return
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            path = self.spool_dir / f"receipts-{os.getpid()}-{int(time.time() * 1000)}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for r in receipts:
                    f.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            log.error("store unavailable at shutdown and the spool is not writable: %d receipts lost: %s",
                      len(receipts), e)
            return
        metrics.RECEIPTS_SPOOLED.inc(len(receipts))
        log.warning("store unavailable at shutdown: %d receipts kept in %s", len(receipts), path)

    def _read_spool(self) -> None:
        if not self.spool_dir.is_dir():
            return
        for path in sorted(self.spool_dir.glob("receipts-*.jsonl")):
            claimed = path.with_suffix(f".claimed-{os.getpid()}")
            try:
                path.rename(claimed)  # only one process wins a file
                lines = claimed.read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for line in lines:
                with contextlib.suppress(ValueError, TypeError):
                    self.receipts.append(Receipt(**json.loads(line)))
            self._claimed.append(claimed)
        if self._claimed:
            log.info("read %d spooled receipts; writing them now", len(self.receipts))
            assert self._wake is not None
            self._wake.set()


def spool_dir(where: str) -> Path:
    if where == OFF or is_postgres(where):
        return Path("gate-data") / "receipts-spool"
    return Path(where).parent / "receipts-spool"


# -- the lifespan's two calls ---------------------------------------------------------------------
async def start(app: Any) -> None:
    """Start recording (nothing when ``store = "off"``): app.state.recorder is what the rest looks for."""
    settings: Settings = app.state.settings
    app.state.recorder = None
    if settings.store == OFF:
        return
    recorder = Recorder(settings, app.state.registries)
    await recorder.start()
    app.state.recorder = recorder
    readiness = getattr(app.state, "readiness", None)
    if readiness is not None:
        readiness.checks["store"] = recorder.check_store
    attempts = getattr(app.state, "attempts", None)  # gate.csp's counts of guard stops and CSP reports
    if attempts is not None and not getattr(app.state, "ledger_listens", False):
        app.state.ledger_listens = True  # once per app, however often its lifespan runs
        attempts.subscribe(lambda a: record_attempt(app, a.site, a.vendor, a.host, a.source))


async def stop(app: Any) -> None:
    recorder: Recorder | None = getattr(app.state, "recorder", None)
    if recorder is not None:
        await recorder.stop()
