"""Limits every worker of a host shares: tokens used once, and token buckets per client.

One small SQLite file (``limits.sqlite3`` beside the store's spool folder), in WAL mode, opened by each
gate process: ``--workers 4`` share one budget per client, not four. What it holds is not precious
(synchronous=OFF): a crash may forget the last few uses. A fleet of hosts counts per host (each host
its own file): a token could count once per host at most, within its hour.

Synchronous: called from a worker thread. ``Unavailable`` when the file cannot be used; callers
decide whether that refuses (reports) or lets through (consent decisions).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from .recording.store import use_wal

PRUNE_EVERY = 300.0  # seconds between deletions of expired rows
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL)",
)


class Unavailable(Exception):
    """The shared limits cannot be read or written."""


class Limits:
    def __init__(self, path: Path | str) -> None:  # ":memory:": this process only (store = "off")
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pruned = 0.0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if str(self.path) != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=2, isolation_level=None, check_same_thread=False)
            use_wal(conn, seconds=2.0)
            conn.execute("PRAGMA synchronous=OFF")
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def take(
        self, bucket: str, per_minute: float, burst: float, once: Sequence[str] = (), expires: float = 0.0
    ) -> tuple[str | None, list[str]]:
        """In one transaction: one token from ``bucket`` (refilled at ``per_minute``, up to ``burst``),
        then the first use of each key in ``once`` (remembered until ``expires``, Unix time).
        Returns (why not, or None when allowed; the keys of ``once`` used for the first time now):
        "rate_limited" (nothing else is looked at), or "replayed" when none of ``once`` was new."""
        now = time.time()
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    reason, fresh = self._take(conn, now, bucket, per_minute, burst, once, expires)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                if now - self._pruned > PRUNE_EVERY:
                    self._pruned = now
                    conn.execute("DELETE FROM used WHERE expires < ?", (now,))
                    conn.execute("DELETE FROM buckets WHERE at < ?", (now - 3600,))
                return reason, fresh
            except sqlite3.Error as e:
                raise Unavailable(f"{self.path}: {e}") from None

    @staticmethod
    def _take(
        conn: sqlite3.Connection,
        now: float,
        bucket: str,
        per_minute: float,
        burst: float,
        once: Sequence[str],
        expires: float,
    ) -> tuple[str | None, list[str]]:
        row = conn.execute("SELECT tokens, at FROM buckets WHERE key = ?", (bucket,)).fetchone()
        tokens = burst if row is None else min(burst, row[0] + max(0.0, now - row[1]) * per_minute / 60.0)
        if tokens < 1.0:
            return "rate_limited", []
        conn.execute(
            "INSERT INTO buckets (key, tokens, at) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
            (bucket, tokens - 1.0, now),
        )
        fresh = [
            key
            for key in once
            if conn.execute(
                "INSERT INTO used (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, expires)
            ).rowcount
        ]
        return ("replayed" if once and not fresh else None), fresh

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
