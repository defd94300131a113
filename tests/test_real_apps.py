"""gate in front of applications nobody here wrote: Django's admin (served by uvicorn in a process of
its own, as an operator would run it) and a Flask app. What breaks here breaks for a new operator."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gate import app as gate_app

from .conftest import gate_settings, serve

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "admin", "gate-test-password-1"


@contextmanager
def django_admin() -> Iterator[str]:
    """tests/django_site with a fresh database and one superuser, on real uvicorn; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"GATE_TEST_DJANGO_DB": str(Path(tmp) / "db.sqlite3"), "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "tests.django_site.setup_db", USER, PASSWORD],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=60,
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.django_site.asgi:application",
                "--fd",
                str(sock.fileno()),
                "--log-level",
                "warning",
                "--lifespan",
                "off",
            ],
            cwd=ROOT,
            env=env,
            pass_fds=[sock.fileno()],
        )
        sock.close()
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + "/admin/login/", timeout=2)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("django did not start") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def csrf_token(page: str) -> str:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert m, page[:500]
    return m.group(1)


def test_django_admin_login_through_gate() -> None:
    """Django checks the browser's Origin against the Host it is sent: gate must pass the visitor's on."""
    with django_admin() as origin, serve(gate_app.create_app(gate_settings(origin))) as public:
        with httpx.Client(base_url=public, timeout=10) as browser:
            login = browser.get("/admin/login/?next=/admin/")
            assert login.status_code == 200 and "data-gate" in login.text  # gated by gate, not bypassed
            r = browser.post(
                "/admin/login/?next=/admin/",
                data={
                    "csrfmiddlewaretoken": csrf_token(login.text),
                    "username": USER,
                    "password": PASSWORD,
                    "next": "/admin/",
                },
                headers={"origin": public, "referer": public + "/admin/login/?next=/admin/"},
            )
            assert r.status_code == 302, r.text[:300]
            assert r.headers["location"] == "/admin/"
            home = browser.get("/admin/")
            assert home.status_code == 200 and "Site administration" in home.text
        # Another visitor, through the same gate and its pooled origin connections, is not logged in:
        # gate keeps no cookie an origin set for someone else (Django's session would let them in).
        with httpx.Client(base_url=public, timeout=10) as stranger:
            r = stranger.get("/admin/")
            assert r.status_code == 302 and r.headers["location"].startswith("/admin/login/"), r.text[:300]
            assert "sessionid" not in stranger.cookies


def test_django_refuses_a_forged_origin_through_gate() -> None:
    """Preserving Host must not switch the origin's CSRF check off: another site's Origin still fails."""
    with django_admin() as origin, serve(gate_app.create_app(gate_settings(origin))) as public:
        with httpx.Client(base_url=public, timeout=10) as browser:
            login = browser.get("/admin/login/")
            r = browser.post(
                "/admin/login/",
                data={
                    "csrfmiddlewaretoken": csrf_token(login.text),
                    "username": USER,
                    "password": PASSWORD,
                },
                headers={"origin": "http://evil.example"},
            )
            assert r.status_code == 403


@contextmanager
def flask_app() -> Iterator[str]:
    """A Flask app (werkzeug's server, in a thread) whose form posts to an absolute URL it builds."""
    from flask import Flask, url_for
    from werkzeug.serving import make_server

    app = Flask("gate_test_flask")

    @app.get("/")
    def index() -> str:
        return (
            f"<!doctype html><html><head><title>apply</title></head><body>"
            f'<form method="post" action="{url_for("apply", _external=True)}"><button>apply</button></form>'
            f"</body></html>"
        )

    @app.post("/apply")
    def apply() -> str:
        return "applied"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_flask_absolute_urls_name_the_public_site() -> None:
    """Flask's url_for(_external=True) builds from the Host it is sent: the form must post back to gate."""
    with flask_app() as origin, serve(gate_app.create_app(gate_settings(origin))) as public:
        page = httpx.get(public + "/", timeout=10)
        assert f'action="{public}/apply"' in page.text, page.text[-300:]
