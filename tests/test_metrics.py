"""GET /_gate/metrics: Prometheus text that counts what gate did, behind the report token, and adds up
correctly when several uvicorn workers serve."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import asgi_client
from .gate_process import gate_process
from .store_support import AUTH, SELF, TOKEN, recording_app, token_query

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(found: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))


async def test_metrics_count_pages_tags_decisions_and_timings(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        before = samples((await client.get("/_gate/metrics", headers=AUTH)).text)
        for _ in range(4):
            await client.get("/jobs/dh-001")
        await client.post("/_gate/consent", json={"choice": "reject_all"}, headers=SELF)
        await client.post(
            "/_gate/beacon",
            content=json.dumps({"v": 1, "page": "/", "hosts": ["connect.facebook.net"]}),
            headers=SELF | {"content-type": "text/plain"},
            params=token_query(app, "/"),
        )
        await app.state.gate.recorder.flush()
        r = await client.get("/_gate/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = samples(r.text)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("gate_pages_total", banner="shown") == 4
    assert delta("gate_tags_total", tag="facebook.pixel", outcome="stripped") == 4
    assert delta("gate_tags_total", tag="facebook.pixel", outcome="fired") == 1
    assert delta("gate_field_leaks_total", tag="facebook.pixel") == 1
    assert delta("gate_decisions_total", choice="reject_all", method="api") == 1
    assert delta("gate_beacons_total", result="204") == 1
    assert delta("gate_upstream_seconds_count") == 4 and delta("gate_rewrite_seconds_count") == 4


async def test_metrics_need_the_report_token(tmp_path):
    app = recording_app(str(tmp_path / "gate.sqlite3"))
    async with asgi_client(app) as client:
        assert (await client.get("/_gate/metrics")).status_code == 401
        assert (await client.get("/_gate/metrics", headers=AUTH)).status_code == 200


def test_several_workers_add_up(tmp_path):
    """Two uvicorn workers: whichever answers the scrape, it reports every worker's pages."""
    (tmp_path / "gate.toml").write_text(f'flush_interval = 0.2\nreport_token = "{TOKEN}"\n')
    env = {
        "GATE_STORE": str(tmp_path / "gate.sqlite3"),
        "GATE_CONFIG": str(tmp_path / "gate.toml"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    n = 40
    workers: set[int] = set()
    with gate_process("--workers", "2", env=env) as gate:
        try:
            for _ in range(n):  # a new connection each time, so that both workers get some
                with httpx.Client(base_url=gate.url, timeout=10) as client:
                    assert client.get("/jobs/dh-001").status_code == 200
            deadline, pages = time.monotonic() + 20, 0.0
            while time.monotonic() < deadline:
                with httpx.Client(base_url=gate.url, timeout=10) as client:
                    pages = total(samples(client.get("/_gate/metrics", headers=AUTH).text), "gate_pages_total")
                if pages >= n:
                    break
                time.sleep(0.1)
            # prometheus-client names each file after the worker's PID
            workers = {int(p.stem.split("_")[-1]) for p in Path(tmp_path / "metrics").glob("counter_*.db")}
        finally:
            gate.process.send_signal(signal.SIGTERM)  # uvicorn stops its workers (a SIGKILL would orphan them)
            try:
                gate.process.wait(timeout=30)
            finally:
                for pid in workers - {gate.process.pid}:  # never leave a worker behind
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
    assert pages == n
    assert len(workers) >= 2  # both workers wrote metric files (the scrape adds them up)
