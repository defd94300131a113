"""Issue 15: `gate serve` warns at start when a site declares a vendor that none of its recent pages
carried (kept or stripped), read from the ledger in the store: the notice would name a recipient that
gets nothing. Real pages recorded by a real gate into a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from gate import cli
from gate.app import create_app
from gate.settings import Site

from . import store_support
from .conftest import KEY, asgi_client, gate_settings, serve
from .store_support import TOKEN
from .test_draft import GA, page, site_app

store_url = store_support.store_url  # fixtures
postgres_url = store_support.postgres_url
PAGES = {f"/jobs/{i}": page(GA, "<p>求人</p>") for i in range(12)}


async def record_pages(store: str, origin: str, vendors: tuple[str, ...]) -> None:
    """Twelve pages, each carrying Google Analytics only, served by gate and flushed to ``store``."""
    conf = gate_settings(
        origin, sites=(Site(upstream=origin, vendors=vendors),), store=store, report_token=TOKEN, flush_interval=3600.0
    )
    app = create_app(conf)
    async with asgi_client(app) as client:
        for path in PAGES:
            assert "googletagmanager" in (await client.get(path)).text  # undecided, opt-in: stripped, yet carried
    # leaving the lifespan flushed the ledger to the store


@pytest.fixture
def started(monkeypatch, tmp_path):
    """`gate serve` up to uvicorn.run (not run): what it prints at start."""
    import uvicorn

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATE_SECRET_KEY", KEY)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setattr(cli, "check_listen", lambda host, port: None)

    def start(store: str, origin: str, vendors: str) -> int:
        monkeypatch.setenv("GATE_STORE", store)
        (tmp_path / "gate.toml").write_text(f'[[site]]\nupstream = "{origin}"\nvendors = {vendors}\n', "utf-8")
        return cli.main(["serve", "--config", "gate.toml", "--port", "0"])

    return start


@pytest.mark.anyio
async def test_a_declared_vendor_no_recent_page_carried_is_named_at_start(
    store_url, started, capsys, monkeypatch, tmp_path
):
    with serve(site_app(PAGES, [])) as origin:
        await record_pages(store_url, origin, ("google", "criteo"))
        capsys.readouterr()
        monkeypatch.setattr(cli, "CARRIED_PAGES", 10)
        assert started(store_url, origin, '["google", "criteo"]') == 0
        warnings = [ln for ln in capsys.readouterr().err.splitlines() if "none of its last" in ln]
        assert warnings == [
            f"gate: WARNING: site (default) declares criteo but none of its last 12 pages (since {today()}) "
            "carried a criteo tag: remove it from vendors, or the notice names a recipient that gets nothing"
        ]
        # fewer pages recorded than the check reads: too little to say, so it says nothing
        monkeypatch.setattr(cli, "CARRIED_PAGES", 13)
        assert started(store_url, origin, '["google", "criteo"]') == 0
        assert "none of its last" not in capsys.readouterr().err
        # a store not created yet: nothing to read, and the check does not create it
        assert started(str(tmp_path / "new" / "gate.sqlite3"), origin, '["google", "criteo"]') == 0
        assert "none of its last" not in capsys.readouterr().err and not (tmp_path / "new").exists()


def today() -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime())
