"""The flusher: owns the ledger's counts, the queue of receipts and the store, for one gate process.

``await start(app)`` and ``await stop(app)`` from the lifespan. In between, a background task flushes
every ``flush_interval`` seconds, and soon after each receipt is kept (a receipt should not wait for
the interval). The store is only ever touched from a worker thread, and no call waits on it for longer
than store.TIMEOUT. A receipt is fsynced to the journal (gate.journal, in ``receipts-spool/`` beside
the store) before the visitor's response leaves; a crash or a store outage loses none, the journal is
replayed at the next start. When the store is slow or down, batches are kept and retried after a
back-off (1 s doubling to 30 s, whatever wakes the flusher); each batch has an id the store records in
the same transaction, so a batch sent twice (an abandoned flush, then the shutdown's) counts once.
At most MAX_PENDING_RECEIPTS receipts wait for the store; past that a decision is refused with 503
rather than acknowledged. At shutdown gate flushes once more, for at most STOP_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ..settings import Settings
from . import journal, metrics
from .journal import Journal
from .ledger import Expander, Ledger, record_attempt
from .store import OFF, Batch, Receipt, Store, StoreError, is_postgres, open_store
from .store import TIMEOUT as STORE_TIMEOUT

if TYPE_CHECKING:
    from ..context import Gate

log = logging.getLogger("gate.recorder")

MAX_PENDING_RECEIPTS = 50_000  # journaled, not yet in the store: past this a decision is refused (503)
STOP_TIMEOUT = 3.0  # the last flush at shutdown: 25 s drain + 3 + 1 < systemd's 30 s (receipts are journaled)
BACKOFF = (1.0, 30.0)  # seconds before retrying a failing store: the first wait, doubled up to the last
PRUNE_EVERY = 6 * 3600


class ReceiptsFull(Exception):
    """A receipt cannot be kept now (too many wait for the store, or the journal cannot be written)."""


class Recorder:
    def __init__(self, settings: Settings, registries: dict) -> None:
        self.settings = settings
        self.where = settings.store
        self.interval = settings.flush_interval
        self.ledger = Ledger()
        self.expander = Expander(settings, registries)
        self.receipts: deque[Receipt] = deque()  # journaled, not yet in a batch
        self.unstored: dict[str, Receipt] = {}  # every journaled receipt the store has not taken, by rid
        self.pending: list[Batch] = []  # counted, not yet in the store: retried, each written once
        self.store: Store | None = None
        self.spool_dir = spool_dir(settings.store)
        self.journal = Journal(self.spool_dir)
        self._files: dict[str, list[Path]] = {}  # batch id -> journal files to delete once it is written
        self._tried: set[str] = set()  # batch ids sent to the store at least once (never merged again)
        self._opening = threading.Lock()
        self._writing = threading.Lock()
        self._pruned_at = 0.0
        self._failures = 0
        self._retry_at = 0.0
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def unwritten(self) -> Batch:
        """Everything not yet in the store, as one batch (for tests and the log)."""
        out = Batch()
        for batch in list(self.pending):
            out.merge(batch)
        return out

    # -- life ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start-up never waits for the store: the flusher opens it (and retries) in the background."""
        self._wake, self._lock = asyncio.Event(), asyncio.Lock()
        await anyio.to_thread.run_sync(self._replay)
        if self.pending:
            self._wake.set()  # what a crash left in the journal goes to the store first
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gate-ledger-flusher")

    async def stop(self) -> None:
        """One last flush within STOP_TIMEOUT; what it cannot write stays in the journal for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        written = False
        if not self._failures:  # a failing store is not asked again: the journal holds every receipt
            with anyio.move_on_after(STOP_TIMEOUT):
                written = await self.flush()
        self.journal.close()
        if not written and self.unstored:
            metrics.RECEIPTS_SPOOLED.inc(len(self.unstored))
            log.warning(
                "store unavailable at shutdown: %d receipts stay in %s for the next start",
                len(self.unstored),
                self.spool_dir,
            )
        if written or self.store is None:
            with anyio.move_on_after(1):
                await anyio.to_thread.run_sync(self._close, abandon_on_cancel=True)

    async def keep_receipt(self, receipt: Receipt) -> None:
        """On the request path, before the visitor is answered: the receipt is fsynced to the journal
        (in a worker thread). ReceiptsFull when it cannot be kept: the caller refuses the decision."""
        if len(self.unstored) >= MAX_PENDING_RECEIPTS:
            raise ReceiptsFull(f"{len(self.unstored)} receipts wait for the store")
        try:
            await anyio.to_thread.run_sync(self.journal.append, receipt, self._queue)
        except OSError as e:
            log.error("receipt journal not writable in %s: %s", self.spool_dir, e)
            raise ReceiptsFull(f"the receipt journal is not writable: {e}") from None
        if self._wake is not None:
            self._wake.set()

    def _queue(self, receipt: Receipt) -> None:
        self.unstored[receipt.rid] = receipt
        self.receipts.append(receipt)

    async def call(self, fn: Any, *args: Any) -> Any:
        """The store's ``fn(*args)`` in a worker thread, given up after the store's own timeout (and a margin)."""
        with anyio.fail_after(2 * STORE_TIMEOUT + 1):
            return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)

    async def open_store(self) -> Store | None:
        """The store, opened now if it is not yet (None while it cannot be, or is backing off)."""
        if self._failures and time.monotonic() < self._retry_at:
            return None  # failing: answer 503 at once rather than reconnect for every request
        if self.store is None:
            with contextlib.suppress(TimeoutError):
                await self.call(self._open)
        return self.store

    async def check_store(self) -> None:
        """For /_gate/readyz: the store answers a query within 2 s (the report and the receipts need
        it; a decision is never lost meanwhile, its receipt waits in the journal)."""
        with anyio.fail_after(2):
            store = await self.open_store()
            if store is None:
                raise ConnectionError("the store cannot be opened")
            await anyio.to_thread.run_sync(store.schema_version, abandon_on_cancel=True)

    async def find_receipts(self, consent_id: str) -> tuple[list[Receipt], bool]:
        """One consent's receipts, stored and journaled (a look-up must not miss a receipt in flight), and
        whether the store answered. A receipt leaves ``unstored`` only once the store has it."""
        waiting = [r for r in list(self.unstored.values()) if r.consent_id == consent_id]
        found: list[Receipt] = []
        answered = False
        store = await self.open_store()
        if store is not None:
            with contextlib.suppress(StoreError, TimeoutError):
                found = await self.call(store.receipts_for, consent_id)
                answered = True
        seen = {r.rid for r in found}
        found += [r for r in waiting if r.rid not in seen]
        return sorted(found, key=lambda r: (r.at, r.rid)), answered

    async def _run(self) -> None:
        assert self._wake is not None
        await self.open_store()
        while True:
            if self._failures:  # backing off: a receipt queued meanwhile is safe in the journal
                await anyio.sleep(max(0.0, self._retry_at - time.monotonic()))
            else:
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
            receipts, files = await anyio.to_thread.run_sync(self.journal.rotate, self._take_receipts)
            return await anyio.to_thread.run_sync(self._write, counts, receipts, files, abandon_on_cancel=True)

    def _take_receipts(self) -> list[Receipt]:
        receipts = list(self.receipts)
        self.receipts.clear()
        return receipts

    # -- in the worker thread -------------------------------------------------------------------------
    def _open(self) -> bool:
        with self._opening:  # the flusher and a report may both ask first
            if self.store is None:
                if time.monotonic() < self._retry_at:
                    return False
                try:
                    self.store = open_store(self.where)
                except StoreError as e:
                    self._failed(e)
                    return False
        return True

    def _close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _replay(self) -> None:
        receipts, files = journal.replay(self.spool_dir)
        if files:
            log.info("read %d journaled receipts from %d files; writing them now", len(receipts), len(files))
            self._add(Batch(receipts=receipts), files)
            for r in receipts:
                self.unstored[r.rid] = r

    def _add(self, batch: Batch, files: list[Path]) -> None:
        """A new batch joins the last pending one if that one was never sent, else waits behind it."""
        last = self.pending[-1] if self.pending else None
        if last is not None and last.bid not in self._tried:
            last.merge(batch)
            self._files.setdefault(last.bid, []).extend(files)
        elif batch or files:
            self.pending.append(batch)
            self._files[batch.bid] = list(files)

    def _write(self, counts: Any, receipts: list[Receipt], files: list[Path]) -> bool:
        batch = self.expander.expand(counts)
        batch.receipts = receipts
        metrics.observe(batch, counts.upstream_seconds, counts.rewrite_seconds)  # once, written or not
        if not self._writing.acquire(timeout=2 * STORE_TIMEOUT):  # an abandoned write still runs
            self._add(batch, files)
            return False
        try:
            self._add(batch, files)
            if not self.pending or not self._open():
                return not self.pending
            assert self.store is not None
            for pending in list(self.pending):
                self._tried.add(pending.bid)
                try:
                    self.store.write(pending)  # False: it was written before (an abandoned flush)
                except StoreError as e:
                    self._failed(e)
                    return False
                self.pending.remove(pending)
                self._tried.discard(pending.bid)
                for r in pending.receipts:
                    self.unstored.pop(r.rid, None)
                journal.delete(self._files.pop(pending.bid, []))
            with contextlib.suppress(StoreError):
                self._prune()
        finally:
            self._writing.release()
        if self._failures:
            log.warning("store %s writable again", self.store.where if is_postgres(self.where) else self.where)
            self._failures, self._retry_at = 0, 0.0
        return True

    def _failed(self, error: StoreError) -> None:
        metrics.STORE_FAILURES.inc()
        self._failures += 1
        first, most = BACKOFF
        self._retry_at = time.monotonic() + min(most, first * 2 ** min(self._failures - 1, 16))
        if self._failures in (1, 10) or self._failures % 100 == 0:  # loud at first, then not every few seconds
            log.error(
                "store unavailable (%d failed attempts, %d receipts waiting; retrying): %s",
                self._failures,
                len(self.unstored),
                error,
            )

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned_at < PRUNE_EVERY or self.store is None:
            return
        self._pruned_at = now
        days = self.settings.retention_days
        # A receipt proves a consent for as long as its cookie can live (13 months at most).
        receipt_days = max(days, min(self.settings.consent_max_age_days, 403) + 1)
        self.store.prune(time.strftime("%Y-%m-%d", time.gmtime(now - days * 86400)), int(now - receipt_days * 86400))


def spool_dir(where: str) -> Path:
    if where == OFF or is_postgres(where):
        return Path("gate-data") / "receipts-spool"
    return Path(where).parent / "receipts-spool"


def limits_path(where: str) -> str:
    """gate.limits' file: beside the store's own folder; in memory (this process) when recording is off."""
    if where == OFF:
        return ":memory:"
    return str(spool_dir(where).parent / "limits.sqlite3")


# -- the lifespan's two calls ---------------------------------------------------------------------
async def start(gate: Gate) -> None:
    """Start recording (nothing when ``store = "off"``): ``gate.recorder`` is what the rest looks for."""
    settings: Settings = gate.settings
    gate.recorder = None
    if settings.store == OFF:
        return
    recorder = Recorder(settings, gate.registries)
    await recorder.start()
    gate.recorder = recorder
    gate.readiness.checks["store"] = recorder.check_store
    if not gate.ledger_listens:  # gate.csp's counts of guard stops and CSP reports, once per app
        gate.ledger_listens = True
        gate.attempts.subscribe(lambda a: record_attempt(gate, a.site, a.vendor, a.host, a.source))


async def stop(gate: Gate) -> None:
    if gate.recorder is not None:
        await gate.recorder.stop()
