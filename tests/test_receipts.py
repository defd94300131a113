"""Proof of consent: every decision writes a receipt (no IP, no user agent) that can be looked up and
exported. How receipts reach the store through outages and shutdowns: tests/test_recorder.py."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gate.banner import text_of
from gate.recording.store import open_store

from . import store_support
from .conftest import CLIENT_IP, asgi_client
from .store_support import AUTH, SELF, recording_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
FORM = {"content-type": "application/x-www-form-urlencoded"} | SELF
UA = "Mozilla/5.0 (receipt-test-agent)"

postgres_url = store_support.postgres_url  # a fixture
store_url = store_support.store_url  # a fixture


def consent_id(app, response) -> str:
    value = response.cookies.get("gate_consent")
    return app.state.gate.codec.read(value, app.state.gate.registries[None]).consent_id


async def three_decisions(app, client) -> str:
    """Accept all from the banner, then narrow by API, then withdraw; returns the consent id."""
    client.headers["user-agent"] = UA
    r = await client.post(
        "/_gate/consent",
        content="choice=accept_all&next=/jobs/dh-001",
        headers=FORM | {"referer": "http://gate.test/jobs/dh-001?utm_source=mail&email=a@b.jp"},
    )
    assert r.status_code == 303 and "gate_consent=" in r.headers["set-cookie"]
    cid = consent_id(app, r)
    r = await client.post(
        "/_gate/consent",
        json={"purposes": {"improvement": True, "advertising": False}},
        headers=SELF | {"referer": "http://gate.test/_gate/preferences?next=/"},
    )
    assert r.status_code == 200 and consent_id(app, r) == cid
    assert (await client.delete("/_gate/consent", headers=SELF)).status_code == 200
    return cid


async def test_every_decision_writes_a_receipt_without_ip_or_user_agent(store_url):
    app = recording_app(store_url)
    async with asgi_client(app) as client:
        cid = await three_decisions(app, client)
        assert await app.state.gate.recorder.flush()
        found = app.state.gate.recorder.store.receipts_for(cid)
    version = app.state.gate.registries[None].version
    assert [(r.choice, r.method, r.page, r.policy_version) for r in found] == [
        ("accept_all", "banner", "/jobs/{id}", version),
        ("custom", "api", "/_gate/preferences", version),
        ("withdraw", "api", "", version),
    ]
    # "content" is no carried tag's purpose: never shown, so never in a receipt (issue 11.1)
    assert found[0].accepted == "advertising,improvement,suggestions" and found[0].refused == ""
    assert found[1].accepted == "improvement" and found[1].refused == "advertising,suggestions"
    assert found[2].accepted == "" and found[0].site == "*" and found[0].at > 1_700_000_000
    stored = json.dumps([r.as_dict() for r in found])
    assert CLIENT_IP not in stored and "receipt-test-agent" not in stored and "utm_source" not in stored
    assert "a@b.jp" not in stored


async def test_a_receipt_records_the_version_text_language_gpc_and_recipients_shown(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    gpc = {"sec-gpc": "1"}
    async with asgi_client(app) as client:
        page = (await client.get("/jobs/dh-001?gate_lang=en", headers=gpc)).text
        start = page.index('<div data-gate role="dialog"')
        shown = page[start : page.index('<script data-gate src="http://gate.test/_gate/static/gate.js')]
        assert "Global Privacy Control" in shown
        r = await client.post(
            "/_gate/consent",
            content="choice=reject_all&lang=en",
            headers=FORM | gpc | {"referer": "http://gate.test/jobs/dh-001?gate_lang=en"},
        )
        cid = consent_id(app, r)
        assert await app.state.gate.recorder.flush()
        [receipt] = app.state.gate.recorder.store.receipts_for(cid)
    assert receipt.policy_version == app.state.gate.registries[None].version
    assert receipt.text_hash == hashlib.sha256(text_of(shown).encode()).hexdigest()
    assert receipt.lang == "en" and receipt.gpc == 1
    assert receipt.recipients == "Google LLC; LINEヤフー株式会社; Criteo SA; Adjust GmbH; Meta Platforms, Inc."
    assert receipt.accepted == "" and receipt.refused == "improvement,advertising,suggestions"


async def test_a_receipt_is_looked_up_by_consent_id_with_the_report_token(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        cid = await three_decisions(app, client)
        assert (await client.get(f"/_gate/receipts/{cid}")).status_code == 401
        r = await client.get(f"/_gate/receipts/{cid}", headers=AUTH)  # still queued: found all the same
        assert r.status_code == 200 and [x["choice"] for x in r.json()["receipts"]] == [
            "accept_all",
            "custom",
            "withdraw",
        ]
        await app.state.gate.recorder.flush()
        r = await client.get(f"/_gate/receipts/{cid}", headers=AUTH)
        assert r.status_code == 200 and len(r.json()["receipts"]) == 3 and r.headers["cache-control"] == "no-store"
        assert (await client.get("/_gate/receipts/no-such-id", headers=AUTH)).status_code == 404


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


async def test_receipts_export_as_csv_and_jsonl_and_show(tmp_path):
    store = str(tmp_path / "gate.sqlite3")
    app = recording_app(store)
    async with asgi_client(app) as client:
        cid = await three_decisions(app, client)
    done = gate("receipts", "export", "--since", "1d", "--format", "csv", "--store", store)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["choice"] for r in rows] == ["accept_all", "custom", "withdraw"] and rows[0]["consent_id"] == cid
    done = gate("receipts", "export", "--since", "2000-01-01", "--until", "2000-12-31", "--store", store)
    assert done.returncode == 0 and done.stdout == ""
    done = gate("receipts", "export", "--since", "1d", "--store", store)  # JSON lines, the default
    assert [json.loads(line)["method"] for line in done.stdout.splitlines()] == ["banner", "api", "api"]
    done = gate("receipts", "show", cid, "--store", store)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 3
    assert gate("receipts", "show", "nope", "--store", store).returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["receipts", "export", "--since", "yesterday"], "gate: --since: expected 2025-04-01, 2025-04-01T09:00 or 30d"),
        (["receipts", "export", "--since", "1d", "--store", "off"], 'gate: store: recording is off (store = "off")'),
        (["receipts", "show", "x", "--store", "/nonexistent/gate.sqlite3"], "gate: store: no store at /nonexistent"),
    ],
    ids=["bad-since", "recording-off", "no-store"],
)
def test_receipts_command_mistakes_are_one_line(args, message):
    done = gate(*args)
    assert done.returncode == 2 and done.stderr.startswith(message) and done.stderr.count("\n") == 1


def test_export_reads_postgresql_too(postgres_url):
    from gate.recording.store import Batch, Receipt

    store = open_store(postgres_url)
    try:
        store.write(
            Batch(
                receipts=[
                    Receipt("r1", "c1", 1_900_000_000, "*", "v", "reject_all", "", "advertising", "", "banner", "/")
                ]
            )
        )
    finally:
        store.close()
    done = gate("receipts", "export", "--since", "2030-01-01", "--format", "jsonl", "--store", postgres_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rid"] == "r1"


def test_export_includes_receipts_still_in_the_journal(tmp_path):
    """A stop whose last flush did not finish leaves acknowledged receipts in the journal only: the
    export writes them to the store first, as the next start would, and finds them."""
    from gate.recording.journal import Journal
    from gate.recording.recorder import spool_dir
    from gate.recording.store import Receipt

    store_path = str(tmp_path / "gate.sqlite3")
    open_store(store_path).close()
    journal = Journal(spool_dir(store_path))
    journal.append(
        Receipt(
            "r-journal", "c-journal", int(time.time()), "*", "v", "accept_all", "improvement", "", "", "banner", "/"
        ),
        lambda r: None,
    )
    journal.close()
    done = gate("receipts", "show", "c-journal", "--store", store_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rid"] == "r-journal"
    assert not list(spool_dir(store_path).glob("receipts-*"))  # stored once: the journal file is gone


@pytest.mark.parametrize(
    "argv",
    [
        ["receipts", "show", "-IOJ1UYTarONG-c0", "--store", "S"],
        ["receipts", "show", "--store", "S", "-IOJ1UYTarONG-c0"],
        ["receipts", "show", "--store=S", "--x1Y"],
    ],
    ids=["id-first", "id-last", "id-like-an-option"],
)
def test_a_consent_id_starting_with_a_dash_is_read_as_the_id(argv):
    """1 in 64 consent ids begins with "-" (URL-safe base64); `gate receipts show` takes it as the id
    wherever it stands, and the store option keeps its value."""
    from gate.cli import build_parser
    from gate.cli_report import consent_id_last

    args = build_parser().parse_args(consent_id_last(argv))
    assert args.consent_id == argv[2] if argv[2].startswith("-I") else args.consent_id == argv[-1]
    assert args.store == "S"
