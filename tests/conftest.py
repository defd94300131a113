"""Shared test helpers.

- ``serve(app)``: real uvicorn on 127.0.0.1 in a thread, for streaming, uploads and timing (in-process
  clients buffer whole bodies). A context manager yielding the base URL; the server is always stopped.
- ``asgi_client(app)``: an in-process httpx client with the app's lifespan run, for status, headers,
  cookies and JSON. (starlette's TestClient warns under starlette 1.x, and warnings are errors here.)
- ``gate_settings(...)``: Settings for one upstream, with a fixed key.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from gate import settings
from gate.settings import Settings

KEY = "test-key-0123456789abcdef"
CLIENT_IP = "203.0.113.7"


@contextmanager
def serve(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 at a free port; yields ``http://127.0.0.1:<port>``."""
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "log_level": "warning",
        "loop": "asyncio",
        "timeout_graceful_shutdown": 2,
    }  # a test's slow handler must not hold up the next
    server = uvicorn.Server(uvicorn.Config(app, **(options | config)))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def http_scope(path: str, headers: list[tuple[bytes, bytes]], method: str = "GET") -> dict[str, Any]:
    """An ASGI HTTP scope as uvicorn hands one over, for a request from CLIENT_IP (tests that drive an
    app by its ASGI calls, to see the order and size of what it sends)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (CLIENT_IP, 50000),
        "server": ("gate.test", 80),
        "state": {},
    }


@asynccontextmanager
async def asgi_client(app: Any, base_url: str = "http://gate.test") -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for ``app`` (lifespan included); requests come from CLIENT_IP."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def gate_settings(upstream: str = "http://origin.test", *, keys: str = KEY, **overrides: Any) -> Settings:
    """Settings for one default site in front of ``upstream``; ``overrides`` replace Settings fields."""
    conf = settings.load({"upstream": upstream}, {"GATE_SECRET_KEY": keys, "GATE_STORE": "off"})
    return dataclasses.replace(conf, **overrides)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (tests/browser_support.py), one per browser test module."""
    from playwright.sync_api import sync_playwright

    from .browser_support import launch

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With GATE_FAIL_ON_SKIP=1 (set by .ci/run) a skipped test fails: CI has every tool the tests need,
    so a skip there means an install step is missing, not a test that may be left out."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("GATE_FAIL_ON_SKIP") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"


def missing_parts() -> list[str]:
    """One line for each outside part some tests need and this machine lacks (tests/run provisions them)."""
    chromium = os.environ.get("GATE_CHROMIUM") or "/usr/bin/chromium"
    checks = [
        (os.access(chromium, os.X_OK), f"Chromium at {chromium} (browser tests; apt-get install chromium)"),
        (shutil.which("node") is not None, "node (the WHATWG URL oracle; apt-get install nodejs)"),
        (
            shutil.which("gzip") is not None and shutil.which("brotli") is not None,
            "the gzip and brotli command-line encoders (decoder oracles; apt-get install gzip brotli)",
        ),
        (
            shutil.which("nginx") is not None or os.access("/usr/sbin/nginx", os.X_OK),
            "nginx (deploy config and real-origin tests; tests/run unpacks it)",
        ),
        (bool(os.environ.get("GATE_TEST_POSTGRES_URL")), "GATE_TEST_POSTGRES_URL (PostgreSQL store tests)"),
        (bool(os.environ.get("GATE_AXE_JS")), "GATE_AXE_JS (accessibility checks; tests/run installs axe-core)"),
        (bool(os.environ.get("GATE_ACORN_JS")), "GATE_ACORN_JS (the JS tokenizer oracle; tests/run installs acorn)"),
    ]
    return [what for present, what in checks if not present]


def pytest_report_header(config: pytest.Config) -> list[str]:
    missing = missing_parts()
    if not missing:
        return ["gate: every outside part the tests use is here"]
    return [f"gate: missing {what}: its tests will skip (run `bash tests/run` to provision)" for what in missing]


def policy_registry():
    """vendors.toml narrowed to the vendors a site carries by default: the five the privacy policy names
    (the catalogue's other recipients are carried only where a site names them)."""
    import tomllib

    from gate import vendors

    raw = tomllib.loads(vendors.DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["vendors"] = {k: v for k, v in raw["vendors"].items() if v.get("carried_by_default", True)}
    return vendors.parse(raw)
