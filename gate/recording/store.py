"""The store: daily aggregates of the ledger and consent receipts, in SQLite or PostgreSQL.

``open_store("gate-data/gate.sqlite3")`` is the embedded default: one file in WAL mode, created on first
run, safely shared by every gate process on the host. ``open_store("postgresql://…")`` points a fleet at
one PostgreSQL through psycopg 3. Both run the same schema, the same migrations and the same queries
(written with ``?``; PostgreSQL gets ``%s``).

Everything here is synchronous and called from a worker thread, never from the event loop, and no call
takes longer than TIMEOUT: a watchdog cuts a store that accepts and never answers. Writes come in batches
(one transaction each); counts are upserted (``n = n + excluded.n``), so any number of processes may add
to the same row. A batch carries a random id recorded in the same transaction (``gate_batches``): a batch
sent twice, say its COMMIT went through but the answer was lost, counts once. Receipts carry a random id
and are inserted once (``ON CONFLICT DO NOTHING``). A site keeps at most MAX_PATHS distinct paths a day;
later ones count under OTHER_PATH.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import GateError

OFF = "off"
EXAMPLES_PER_FINDING = 5
# Day-keyed rows: (site, day, path, …). ``day`` is the UTC date as text (YYYY-MM-DD): it sorts as it reads.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the ledger
        (
            "CREATE TABLE gate_pages (site TEXT NOT NULL, day TEXT NOT NULL, path TEXT NOT NULL,"
            " banner INTEGER NOT NULL, gpc INTEGER NOT NULL, n BIGINT NOT NULL,"
            " PRIMARY KEY (site, day, path, banner, gpc))"
        ),
        (
            "CREATE TABLE gate_tags (site TEXT NOT NULL, day TEXT NOT NULL, path TEXT NOT NULL, tag TEXT NOT NULL,"
            " outcome TEXT NOT NULL, reason TEXT NOT NULL, n BIGINT NOT NULL,"
            " PRIMARY KEY (site, day, path, tag, outcome, reason))"
        ),
        (
            "CREATE TABLE gate_decisions (site TEXT NOT NULL, day TEXT NOT NULL, choice TEXT NOT NULL,"
            " method TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (site, day, choice, method))"
        ),
        (
            "CREATE TABLE gate_purposes (site TEXT NOT NULL, day TEXT NOT NULL, purpose TEXT NOT NULL,"
            " accepted INTEGER NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (site, day, purpose, accepted))"
        ),
        (
            "CREATE TABLE gate_findings (site TEXT NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL,"
            " subject TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (site, day, kind, subject))"
        ),
        (
            "CREATE TABLE gate_examples (site TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,"
            " path TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (site, kind, subject, path))"
        ),
        # Retention deletes by day across sites; the two big tables get an index for it.
        "CREATE INDEX gate_pages_day ON gate_pages (day)",
        "CREATE INDEX gate_tags_day ON gate_tags (day)",
    ),
    (  # 2: proof of consent
        (
            "CREATE TABLE gate_receipts (rid TEXT PRIMARY KEY, consent_id TEXT NOT NULL, at BIGINT NOT NULL,"
            " site TEXT NOT NULL, policy_version TEXT NOT NULL, choice TEXT NOT NULL, accepted TEXT NOT NULL,"
            " refused TEXT NOT NULL, vendors_refused TEXT NOT NULL, method TEXT NOT NULL, page TEXT NOT NULL)"
        ),
        "CREATE INDEX gate_receipts_consent ON gate_receipts (consent_id)",
        "CREATE INDEX gate_receipts_at ON gate_receipts (at)",
    ),
    (  # 3: one row per written batch, so a batch written twice (a flush abandoned, then retried) counts once
        "CREATE TABLE gate_batches (bid TEXT PRIMARY KEY, at BIGINT NOT NULL)",
    ),
    (  # 4: what the visitor was shown (issue 11): the text's hash, language, Sec-GPC, recipients listed,
        # and the recipients given a separate consent to personal data from forms
        "ALTER TABLE gate_receipts ADD COLUMN text_hash TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE gate_receipts ADD COLUMN lang TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE gate_receipts ADD COLUMN gpc INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE gate_receipts ADD COLUMN recipients TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE gate_receipts ADD COLUMN personal_data TEXT NOT NULL DEFAULT ''",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
TIMEOUT = 5.0  # seconds: the longest any one store call may take before it is cut (StoreError)
MAX_PATHS = 500  # distinct paths per site and day; the rest of the day's paths count under OTHER_PATH
OTHER_PATH = "(other)"
BATCHES_KEPT = 7 * 86400  # how long a written batch's id is remembered (a retry comes long before)


class StoreError(GateError):
    """The store cannot be opened or written; the caller keeps its batch and retries."""


def use_wal(conn: sqlite3.Connection, seconds: float) -> None:
    """Put a SQLite connection in WAL mode, retrying for up to ``seconds``: switching a new file to WAL
    ignores the busy timeout while another process does the same."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class Receipt:
    """Proof of one consent decision. No IP address, no user agent: nothing that names the visitor."""

    rid: str  # this receipt's own random id: a retried write inserts it once
    consent_id: str
    at: int  # Unix seconds
    site: str
    policy_version: str
    choice: str  # accept_all | reject_all | custom | withdraw
    accepted: str  # purpose ids, comma-separated
    refused: str
    vendors_refused: str
    method: str  # banner | page | api | gpc
    page: str  # the path it was given on, without the query
    text_hash: str = ""  # sha256 of the exact text the visitor was shown (banner or preferences page)
    lang: str = ""  # the language it was shown in
    gpc: int = 0  # 1 when the browser sent Sec-GPC: 1
    recipients: str = ""  # the recipients listed, "; "-separated (legal names may hold commas)
    personal_data: str = ""  # vendor ids given the separate consent to personal data from forms

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


RECEIPT_COLUMNS = tuple(f.name for f in fields(Receipt))


@dataclass
class Batch:
    """One flush: counts keyed by their row's primary key (without n), example pages, receipts."""

    pages: dict[tuple[str, str, str, int, int], int] = field(default_factory=dict)
    tags: dict[tuple[str, str, str, str, str, str], int] = field(default_factory=dict)
    decisions: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    purposes: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    findings: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    examples: dict[tuple[str, str, str, str], str] = field(default_factory=dict)  # (site, kind, subject, path) -> day
    receipts: list[Receipt] = field(default_factory=list)
    bid: str = field(default_factory=lambda: uuid.uuid4().hex)  # written once, however often it is sent

    COUNTS = ("pages", "tags", "decisions", "purposes", "findings")

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in (*self.COUNTS, "examples", "receipts"))

    def merge(self, other: Batch) -> None:
        """Add ``other`` in (a batch that failed to write waits for the next flush this way)."""
        for name in self.COUNTS:
            mine = getattr(self, name)
            for key, n in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + n
        for key, day in other.examples.items():
            self.examples.setdefault(key, day)
        self.receipts.extend(other.receipts)


_UPSERTS = {
    "pages": ("gate_pages", ("site", "day", "path", "banner", "gpc")),
    "tags": ("gate_tags", ("site", "day", "path", "tag", "outcome", "reason")),
    "decisions": ("gate_decisions", ("site", "day", "choice", "method")),
    "purposes": ("gate_purposes", ("site", "day", "purpose", "accepted")),
    "findings": ("gate_findings", ("site", "day", "kind", "subject")),
}


def _folded(counts: dict[tuple[Any, ...], int], fold: dict[tuple[str, str, str], str]) -> dict[tuple[Any, ...], int]:
    if not fold:
        return counts
    out: dict[tuple[Any, ...], int] = {}
    for key, n in counts.items():
        path = fold.get(key[:3])
        if path is not None:
            key = (*key[:2], path, *key[3:])
        out[key] = out.get(key, 0) + n
    return out


def _upsert(table: str, key: Sequence[str]) -> str:
    columns = ", ".join(key)
    return (
        f"INSERT INTO {table} ({columns}, n) VALUES ({', '.join('?' * (len(key) + 1))})"
        f" ON CONFLICT ({columns}) DO UPDATE SET n = {table}.n + excluded.n"
    )


_EXAMPLE = (
    "INSERT INTO gate_examples (site, kind, subject, path, day)"
    " SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT)"
    " WHERE (SELECT COUNT(*) FROM gate_examples WHERE site = ? AND kind = ? AND subject = ?) < ?"
    " ON CONFLICT (site, kind, subject, path) DO NOTHING"
)
_RECEIPT = (
    f"INSERT INTO gate_receipts ({', '.join(RECEIPT_COLUMNS)}) VALUES ({', '.join('?' * len(RECEIPT_COLUMNS))})"
    " ON CONFLICT (rid) DO NOTHING"
)
_RANGE = "site = ? AND day >= ? AND day <= ?"
QUERIES = {  # the report's reads: (site, first day, last day)
    "pages": f"SELECT day, banner, gpc, CAST(SUM(n) AS BIGINT) FROM gate_pages WHERE {_RANGE}"
    " GROUP BY day, banner, gpc",
    "paths": f"SELECT path, CAST(SUM(n) AS BIGINT) FROM gate_pages WHERE {_RANGE} GROUP BY path",
    "tags": f"SELECT day, tag, outcome, reason, CAST(SUM(n) AS BIGINT) FROM gate_tags WHERE {_RANGE}"
    " GROUP BY day, tag, outcome, reason",
    "decisions": f"SELECT day, choice, method, CAST(SUM(n) AS BIGINT) FROM gate_decisions WHERE {_RANGE}"
    " GROUP BY day, choice, method",
    "purposes": f"SELECT day, purpose, accepted, CAST(SUM(n) AS BIGINT) FROM gate_purposes WHERE {_RANGE}"
    " GROUP BY day, purpose, accepted",
    "findings": f"SELECT day, kind, subject, CAST(SUM(n) AS BIGINT) FROM gate_findings WHERE {_RANGE}"
    " GROUP BY day, kind, subject",
}


class Store:
    """One connection, used by one thread at a time (a lock serialises the flusher and report reads)."""

    dialect = "sqlite"

    def __init__(self, where: str) -> None:
        self.where = where
        self._lock = threading.RLock()
        self._timed_out = False
        self._timed_out_at = -TIMEOUT
        self._conn: Any = None
        with self._lock:
            self._connect()
            self._migrate()

    # -- connections and dialects -----------------------------------------------------------------
    def _connect(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        """From the watchdog's thread: make the call that hangs on the connection fail now."""

    @contextmanager
    def _held(self) -> Iterator[None]:
        """The connection, for at most TIMEOUT seconds: a watchdog cuts a call that hangs (a store that
        accepts and never answers), so no caller, and no shutdown, waits on it for longer."""
        if not self._lock.acquire(timeout=TIMEOUT):
            raise StoreError(f"{mask_url(self.where)}: busy for {TIMEOUT:g} s (an earlier call still hangs)")
        if time.monotonic() - self._timed_out_at < TIMEOUT:  # it just hung: the next caller fails at once
            self._lock.release()
            raise StoreError(f"{mask_url(self.where)}: gave no answer within {TIMEOUT:g} s a moment ago")
        self._timed_out = False
        watchdog = threading.Timer(TIMEOUT, self._time_out)
        watchdog.daemon = True
        watchdog.start()
        try:
            yield
        finally:
            watchdog.cancel()
            self._lock.release()

    def _time_out(self) -> None:
        self._timed_out, self._timed_out_at = True, time.monotonic()
        try:
            self._abort()
        except Exception:  # the connection may be gone already; the caller sees its own error
            pass

    def _error(self, e: BaseException) -> StoreError:
        if self._timed_out:
            return StoreError(f"{mask_url(self.where)}: no answer within {TIMEOUT:g} s")
        return StoreError(f"{mask_url(self.where)}: {e}".strip())

    def _sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _lock_schema(self, cur: Any) -> None:
        """Inside the migration transaction: keep other processes out until it commits."""

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- schema --------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        try:  # the common case, read-only: no write lock taken at every start of every process
            if self.schema_version() == SCHEMA_VERSION:
                return
        except (StoreError, IndexError):
            pass  # a new store: no gate_meta yet
        with self._transaction() as cur:
            self._lock_schema(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS gate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cur.execute(self._sql("SELECT value FROM gate_meta WHERE key = ?"), ("schema_version",))
            row = cur.fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.where}: schema version {version} is newer than this gate knows "
                    f"({SCHEMA_VERSION}); upgrade gate"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    cur.execute(statement)
            if version < SCHEMA_VERSION:
                cur.execute(
                    self._sql(
                        "INSERT INTO gate_meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                        " DO UPDATE SET value = excluded.value"
                    ),
                    ("schema_version", str(SCHEMA_VERSION)),
                )

    def schema_version(self) -> int:
        return int(self._read("SELECT value FROM gate_meta WHERE key = ?", ("schema_version",))[0][0])

    # -- writing -------------------------------------------------------------------------------------
    def write(self, batch: Batch) -> bool:
        """One transaction for the whole batch: all of it lands, or none (and the caller retries).
        False when this batch (by its ``bid``) was written before: nothing is counted twice."""
        with self._transaction() as cur:
            cur.execute(
                self._sql("INSERT INTO gate_batches (bid, at) VALUES (?, ?) ON CONFLICT (bid) DO NOTHING"),
                (batch.bid, int(time.time())),
            )
            if cur.rowcount == 0:
                return False
            fold = self._path_folder(cur, batch)
            for name, (table, key) in _UPSERTS.items():
                counts = getattr(batch, name)
                if name in ("pages", "tags"):
                    counts = _folded(counts, fold)
                rows = [(*k, n) for k, n in counts.items() if n]
                if rows:
                    cur.executemany(self._sql(_upsert(table, key)), rows)
            if batch.examples:
                cur.executemany(
                    self._sql(_EXAMPLE),
                    [
                        (site, kind, subject, path, day, site, kind, subject, EXAMPLES_PER_FINDING)
                        for (site, kind, subject, path), day in sorted(batch.examples.items())
                    ],
                )
            if batch.receipts:
                cur.executemany(self._sql(_RECEIPT), [astuple(r) for r in batch.receipts])
        return True

    def _path_folder(self, cur: Any, batch: Batch) -> dict[tuple[str, str, str], str]:
        """(site, day, path) -> the path to count it under: the day's first MAX_PATHS distinct paths of a
        site keep their own rows (a batch's busiest first), later ones go to OTHER_PATH."""
        seen: dict[tuple[str, str], dict[str, int]] = {}
        for table in ("pages", "tags"):
            for (site, day, path, *_), n in getattr(batch, table).items():
                paths = seen.setdefault((site, day), {})
                paths[path] = paths.get(path, 0) + n
        out: dict[tuple[str, str, str], str] = {}
        for (site, day), paths in seen.items():
            cur.execute(
                self._sql(
                    "SELECT path FROM gate_pages WHERE site = ? AND day = ?"
                    " UNION SELECT path FROM gate_tags WHERE site = ? AND day = ?"
                ),
                (site, day, site, day),
            )
            known = {r[0] for r in cur.fetchall()}
            for path in sorted(paths, key=lambda p: -paths[p]):
                if path not in known and path != OTHER_PATH:
                    if len(known - {OTHER_PATH}) >= MAX_PATHS:
                        out[(site, day, path)] = OTHER_PATH
                        continue
                    known.add(path)
        return out

    def prune(self, before_day: str, receipts_before: int) -> None:
        """Retention: drop day rows older than ``before_day`` and receipts older than ``receipts_before``."""
        with self._transaction() as cur:
            for table in (
                "gate_pages",
                "gate_tags",
                "gate_decisions",
                "gate_purposes",
                "gate_findings",
                "gate_examples",
            ):
                cur.execute(self._sql(f"DELETE FROM {table} WHERE day < ?"), (before_day,))
            cur.execute(self._sql("DELETE FROM gate_receipts WHERE at < ?"), (receipts_before,))
            cur.execute(self._sql("DELETE FROM gate_batches WHERE at < ?"), (int(time.time()) - BATCHES_KEPT,))

    # -- reading -------------------------------------------------------------------------------------
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction(write=False) as cur:
            cur.execute(self._sql(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    def query(self, name: str, site: str, first_day: str, last_day: str) -> list[tuple[Any, ...]]:
        """One of QUERIES for ``site`` between two days (inclusive)."""
        return self._read(QUERIES[name], (site, first_day, last_day))

    def examples(self, site: str) -> list[tuple[str, str, str, str]]:
        return self._read(
            "SELECT kind, subject, path, day FROM gate_examples WHERE site = ? ORDER BY kind, subject, day, path",
            (site,),
        )

    def sites(self) -> list[str]:
        rows = self._read(
            "SELECT DISTINCT site FROM gate_pages UNION SELECT DISTINCT site FROM gate_decisions"
            " UNION SELECT DISTINCT site FROM gate_tags"
        )
        return sorted(r[0] for r in rows)

    def receipts_for(self, consent_id: str) -> list[Receipt]:
        rows = self._read(
            f"SELECT {', '.join(RECEIPT_COLUMNS)} FROM gate_receipts WHERE consent_id = ? ORDER BY at, rid",
            (consent_id,),
        )
        return [Receipt(*r) for r in rows]

    def receipts_between(self, since: int, until: int, page: int = 1000) -> Iterator[Receipt]:
        """Receipts with since <= at < until, oldest first, read ``page`` rows at a time."""
        after: tuple[int, str] = (since - 1, "\uffff")
        while True:
            rows = self._read(
                f"SELECT {', '.join(RECEIPT_COLUMNS)} FROM gate_receipts WHERE at < ?"
                " AND (at > ? OR (at = ? AND rid > ?)) ORDER BY at, rid LIMIT ?",
                (until, after[0], after[0], after[1], page),
            )
            for r in rows:
                yield Receipt(*r)
            if len(rows) < page:
                return
            after = (rows[-1][2], rows[-1][0])  # (at, rid) of the last row


class SqliteStore(Store):
    dialect = "sqlite"

    def _connect(self) -> None:
        path = Path(self.where)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are opened explicitly, BEGIN IMMEDIATE taking the write lock
            # at once, so two processes never deadlock upgrading a read lock.
            conn = sqlite3.connect(path, timeout=TIMEOUT, isolation_level=None, check_same_thread=False)
            use_wal(conn, seconds=5.0)
            # WAL + NORMAL: a committed flush survives the process being killed; only a power cut may
            # lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{self.where}: cannot open the SQLite store: {e}") from None
        self._conn = conn

    def _abort(self) -> None:
        if self._conn is not None:
            self._conn.interrupt()

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        with self._held():
            if self._conn is None:
                self._connect()
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as e:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise self._error(e) from None
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                cur.close()


class PostgresStore(Store):
    dialect = "postgresql"

    def _connect(self) -> None:
        import psycopg  # only a fleet needs it

        try:
            self._conn = psycopg.connect(self.where, autocommit=True, connect_timeout=5)
        except psycopg.Error as e:
            raise StoreError(f"{mask_url(self.where)}: cannot connect: {e}".strip()) from None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7163523)")  # any fixed number: gate's migrations

    def _abort(self) -> None:
        # Shut the socket down under psycopg's feet: its wait for an answer ends with an error at once.
        # (A cancel request would need the server to answer; the server is what hangs.)
        conn = self._conn
        if conn is not None and not conn.closed:
            with socket.socket(fileno=os.dup(conn.pgconn.socket)) as s:
                s.shutdown(socket.SHUT_RDWR)

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[Any]:
        import psycopg

        with self._held():
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = None
                self._connect()
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.Error as e:
                raise self._error(e) from None


def is_postgres(where: str) -> bool:
    return where.startswith(("postgresql://", "postgres://"))


def open_store(where: str) -> Store:
    """The store at ``where``: a PostgreSQL URL, or the path of a SQLite file (created with its folders)."""
    return PostgresStore(where) if is_postgres(where) else SqliteStore(where)


def mask_url(where: str) -> str:
    """``where`` with any password hidden, for logs and `gate check`."""
    if not is_postgres(where) or "@" not in where:
        return where
    scheme, rest = where.split("://", 1)
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in userinfo else ''}@{host}"
