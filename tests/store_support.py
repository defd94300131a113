"""Helpers for the ledger, store, report, beacon, receipts and metrics tests.

- ``store_url``: parametrised over both backends: a SQLite file under tmp_path, and PostgreSQL.
- ``postgres_url``: a schema of its own (dropped after the test) on the server that
  GATE_TEST_POSTGRES_URL names. Without that variable the test is skipped with the reason, unless
  GATE_REQUIRE_POSTGRES=1 (set by .ci/run): then a missing server is a failure, never a silent skip.
- ``recording_app(store, ...)``: gate in front of the demo site, recording into ``store``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from gate.app import create_app
from gate.consent import ConsentCodec, decide

from .conftest import KEY, gate_settings

PG_ENV = "GATE_TEST_POSTGRES_URL"
REQUIRE_ENV = "GATE_REQUIRE_POSTGRES"
TOKEN = "report-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SELF = {"origin": "http://gate.test"}


def with_schema(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (libpq's options parameter)."""
    return url + ("&" if "?" in url else "?") + "options=" + quote(f"-csearch_path={schema}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {PG_ENV} is not set: the PostgreSQL store tests must run here")
        pytest.skip(f"{PG_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test): no PostgreSQL to test")
    import psycopg

    schema = f"gate_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error as e:
        pytest.fail(f"{PG_ENV}={base}: cannot reach PostgreSQL: {e}")
    try:
        yield with_schema(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "data" / "gate.sqlite3")
    return request.getfixturevalue("postgres_url")


def recording_app(store: str, **overrides: Any) -> Any:
    """gate in front of the demo site, recording into ``store``; flushes only when told (or at stop)."""
    options: dict[str, Any] = {"store": store, "report_token": TOKEN, "flush_interval": 3600.0} | overrides
    return create_app(gate_settings("demo", **options))


def token_query(app: Any, page: str = "/", site: str = "*") -> dict[str, str]:
    """``?t=`` for a beacon or CSP report: the token of one page view gate served (gate.tokens)."""
    return {"t": app.state.gate.page_tokens.mint(site, page)}


def consent_cookie(app: Any, accepted: list[str], vendors_refused: tuple[str, ...] = ()) -> dict[str, str]:
    registry = app.state.gate.registries[None]
    value = ConsentCodec((KEY,)).dumps(decide(registry, accepted, vendors_refused=vendors_refused))
    return {"gate_consent": value}
