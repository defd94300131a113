"""The wheel an operator installs works outside the source tree.

An editable install reads the repository's files, so it hid that a built wheel could not find
vendors.toml. Here the wheel is built the way pip builds it, installed into a fresh virtual environment
outside the repository (its dependencies borrowed from the test environment, never gate itself), and
`gate check` and `gate serve` run from a directory of their own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding gate's wheel; yields its bin/ directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
        check=True,
        timeout=300,
    )
    wheel = next((tmp / "dist").glob("gate-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    # The dependencies, from the test environment's site-packages as a plain path: a .pth line adds the
    # directory without running the .pth files inside it, so the editable gate there stays out of reach.
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    yield venv / "bin"


def _run_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_") and k != "PYTHONPATH"}
    return env | {"GATE_SECRET_KEY": "wheel-test-key-0123456789", "GATE_STORE": "off", "HOME": str(tmp)}


def test_installed_gate_is_the_wheel_not_the_source_tree(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import gate; print(gate.__file__)"],
        cwd=tmp_path,
        env=_run_env(tmp_path),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.parent), where


def test_gate_check_finds_the_shipped_registry_and_names_the_scan(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(installed / "gate"), "check"],
        cwd=tmp_path,
        env=_run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stdout
    assert re.search(r"vendors\.toml: policy version \w+", done.stdout)
    assert "scan: C extension" in done.stdout  # this machine has a compiler: the wheel carries the C scan


def test_gate_serve_from_the_wheel_serves_the_demo_with_its_banner(installed: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(installed / "gate"), "serve", "--port", "0"],
        cwd=tmp_path,
        env=_run_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline, url, seen = time.monotonic() + 30, "", []
        while time.monotonic() < deadline and not url:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            if m := _LISTENING.search(line):
                url = f"http://127.0.0.1:{m.group(1)}"
        assert url, "gate serve did not start:\n" + "".join(seen)
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200
        assert "data-gate" in page.text and "/_gate/consent" in page.text  # the banner's form
        css = re.search(r'href="([^"]*/_gate/static/gate\.css[^"]*)"', page.text)
        assert css, "the banner's stylesheet link"
        assert httpx.get(httpx.URL(url).join(css.group(1)), timeout=10).status_code == 200
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
