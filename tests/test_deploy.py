"""deploy/: every `gate` flag and /_gate/ path the files name exists; the probe works against a real gate;
systemd-analyze and nginx -t pass where those tools are installed."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from gate import cli, settings
from gate.app import create_app

from .conftest import serve

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
UNIT = (DEPLOY / "systemd" / "gate.service").read_text(encoding="utf-8")
NGINX = (DEPLOY / "nginx" / "gate.conf").read_text(encoding="utf-8")
GATE_PATH = re.compile(r"/_gate/[A-Za-z0-9_./-]*[A-Za-z0-9_]")


# -- helpers --------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in DOCKERFILE.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def exec_form(name: str, stage: list[tuple[str, str]]) -> list[str]:
    [args] = [a for n, a in stage if n == name]
    return json.loads(args.removeprefix("CMD").strip())


def unit_values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT, re.M)


def gate_argv_is_valid(argv: list[str]) -> None:
    """argparse accepts ``argv`` (every flag exists, every value parses); fails the test otherwise."""
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`gate {' '.join(argv)}` is not a valid gate command line")


def get_status(path: str) -> int:
    async def go() -> int:
        app = create_app(settings.load({}, {}))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080") as c:
            return (await c.get(path)).status_code

    return asyncio.run(go())


def mentioned_paths() -> set[str]:
    return set(GATE_PATH.findall(DOCKERFILE + UNIT + NGINX))


# -- what the files name exists -------------------------------------------------------------------
def test_deploy_files_name_gate_paths():
    assert "/_gate/healthz" in mentioned_paths()


@pytest.mark.parametrize("path", sorted(mentioned_paths()))
def test_every_gate_path_in_deploy_exists(path):
    assert get_status(path) == 200


def test_image_command_line_is_valid():
    stage = final_stage()
    entrypoint, command = exec_form("ENTRYPOINT", stage), exec_form("CMD", stage)
    assert entrypoint == ["gate"]
    gate_argv_is_valid(command)


def test_systemd_command_line_is_valid():
    [exec_start] = unit_values("ExecStart")
    program, *argv = shlex.split(exec_start)
    assert Path(program).name == "gate"
    gate_argv_is_valid(argv)


def test_image_reads_the_registry_it_copies():
    stage = final_stage()
    copies = [a.split() for n, a in stage if n == "COPY" and not a.startswith("--from")]
    assert ["vendors.toml", "/etc/gate/vendors.toml"] in copies
    assert re.search(r"\bGATE_VENDORS=/etc/gate/vendors\.toml\b", " ".join(a for n, a in stage if n == "ENV"))


def test_systemd_unit_passes_the_registry_and_config():
    [exec_start] = unit_values("ExecStart")
    args = cli.build_parser().parse_args(shlex.split(exec_start)[1:])
    assert (args.vendors, args.config) == ("/etc/gate/vendors.toml", "/etc/gate/gate.toml")


def test_files_the_image_copies_exist():
    for name, args in dockerfile_instructions():
        if name == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_every_data_file_is_packaged():
    """The image installs gate non-editable: a data file outside package-data would be missing there."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["gate"]
    for path in (ROOT / "gate").rglob("*"):
        relative = path.relative_to(ROOT / "gate").as_posix()
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in relative:
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"gate/{relative} is not in package-data"


# -- the image ------------------------------------------------------------------------------------
def test_image_is_multi_stage_and_runs_as_a_user():
    assert sum(1 for n, _ in dockerfile_instructions() if n == "FROM") >= 2
    users = [a for n, a in final_stage() if n == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_image_bakes_in_no_secret():
    for name, args in dockerfile_instructions():
        assert "SECRET" not in args.upper(), f"{name} {args}"


def healthcheck_code() -> str:
    [check] = [a for n, a in final_stage() if n == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3:].strip())
    assert argv[:2] == ["python", "-c"]
    return argv[2]


def test_healthcheck_passes_against_a_running_gate():
    app = create_app(settings.load({}, {}))
    with serve(app) as url:
        port = url.rsplit(":", 1)[1]
        done = subprocess.run([sys.executable, "-c", healthcheck_code()], env={**os.environ, "GATE_PORT": port},
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_healthcheck_fails_when_nothing_answers():
    done = subprocess.run([sys.executable, "-c", healthcheck_code()], env={**os.environ, "GATE_PORT": "9"},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0


# -- systemd --------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                                     "PrivateTmp=yes", "ProtectHome=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                                     "CapabilityBoundingSet=", "SystemCallFilter=@system-service",
                                     "EnvironmentFile=/etc/gate/gate.env"])
def test_systemd_unit_is_sandboxed(setting):
    assert re.search(rf"^{re.escape(setting)}$", UNIT, re.M)


def test_systemd_does_not_restart_on_a_config_error(capsys):
    assert unit_values("RestartPreventExitStatus") == ["2"]
    assert cli.main(["check", "--config", "/nonexistent/gate.toml"]) == 2  # the code a config error exits with
    capsys.readouterr()


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    env_file = tmp_path / "gate.env"
    env_file.write_text("GATE_SECRET_KEY=test-key-0123456789abcdef\n", encoding="utf-8")
    [exec_start] = unit_values("ExecStart")
    # verify wants ExecStart's program to exist: point it at this interpreter, keep the rest
    unit = UNIT.replace(shlex.split(exec_start)[0], sys.executable).replace("/etc/gate/gate.env", str(env_file))
    (tmp_path / "gate.service").write_text(unit, encoding="utf-8")
    done = subprocess.run([tool, "verify", str(tmp_path / "gate.service")], capture_output=True, text=True,
                          timeout=60)
    ours = [ln for ln in done.stderr.splitlines() if "gate.service" in ln]
    assert done.returncode == 0 and not ours, done.stderr


# -- nginx ----------------------------------------------------------------------------------------
def test_nginx_passes_to_gate_at_its_default_address():
    default = settings.Settings(sites=(), secret_keys=("x",))
    assert re.search(rf"^\s*server {re.escape(default.host)}:{default.port};", NGINX, re.M)
    assert re.search(r"^\s*proxy_pass http://gate;", NGINX, re.M)


@pytest.mark.parametrize("directive", [
    r"proxy_set_header Host\s+\$host;",
    r"proxy_set_header X-Forwarded-For\s+\$remote_addr;",
    r"proxy_set_header X-Forwarded-Proto\s+\$scheme;",
    r"proxy_set_header X-Forwarded-Host\s+\$host;",
    r"proxy_buffering off;",
    r"proxy_request_buffering off;",
    r"client_max_body_size 60m;",
    r"listen 443 ssl;",
])
def test_nginx_terminates_tls_and_streams(directive):
    assert re.search(rf"^\s*{directive}", NGINX, re.M)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def test_nginx_accepts_the_config(tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx); config checked by text only")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a throw-away certificate for nginx -t")
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=gate.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    ours = NGINX.replace("/etc/ssl/gate/fullchain.pem", str(cert)).replace("/etc/ssl/gate/privkey.pem", str(key))
    (tmp_path / "gate.conf").write_text(ours, encoding="utf-8")
    temp = "\n".join(f"    {d}_temp_path {tmp_path}/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temp}\n    include {tmp_path}/gate.conf;\n}}\n", encoding="utf-8")
    done = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
