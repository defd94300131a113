"""`gate ...` commands: one line and exit 2 on a user's mistake, the right uvicorn options otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from gate import __version__, cli, settings
from gate.server import GateProtocol

ROOT = Path(__file__).resolve().parent.parent
KEY = "k" * 32


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No GATE_* from the caller's shell; whatever `serve` writes to os.environ is undone."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("GATE_"):
            monkeypatch.delenv(name)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def fake_app(monkeypatch):
    """gate.app replaced by a recorder, so these tests do not depend on the proxy being built."""
    built: list[settings.Settings] = []
    module = types.ModuleType("gate.app")
    module.create_app = lambda conf: built.append(conf) or ("app", conf)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gate.app", module)
    return built


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Writes ./gate.toml in a fresh directory, so messages read as operators see them."""
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> Path:
        (tmp_path / "gate.toml").write_text(text, encoding="utf-8")
        return Path("gate.toml")

    return write


@pytest.fixture
def uvicorn_run(monkeypatch):
    calls: list[tuple[object, dict]] = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(cli, "check_listen", lambda host, port: None)  # these ports are never bound
    return calls


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_keys_new_prints_a_fresh_urlsafe_key(capsys):
    assert cli.main(["keys", "new"]) == 0
    first = capsys.readouterr().out.strip()
    cli.main(["keys", "new"])
    second = capsys.readouterr().out.strip()
    assert len(first) >= 43 and first != second
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    settings.load({"upstream": "http://127.0.0.1:9"}, {"GATE_SECRET_KEY": first})  # accepted as a key


def test_version(capsys):
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"gate {__version__}"


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "gate --help" in one_line(capsys.readouterr().err)


def test_unknown_flag_is_a_usage_error_not_an_exception(capsys):
    assert cli.main(["serve", "--port", "eighty"]) == 2
    assert "invalid int value" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [["serve", "--bogus"], ["scan"], ["nonsense"], []],
    ids=["unknown-flag", "missing-argument", "unknown-command", "no-command"],
)
def test_usage_mistakes_take_one_line(capsys, argv):
    assert cli.main(argv) == 2
    assert one_line(capsys.readouterr().err).startswith("gate")


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_refused(capsys, uvicorn_run, fake_app, port):
    assert cli.main(["serve", "--port", port]) == 2
    captured = capsys.readouterr()
    assert one_line(captured.err) == f"gate: command line: --port: expected a number from 0 to 65535, got {port}"
    assert captured.out == "" and uvicorn_run == []


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    """Not "serving on …", six uvicorn lines and exit 3: the real command, the port held by another."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gate.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("GATE_")},
        )
    assert done.returncode == 2
    assert (
        one_line(done.stderr) == f"gate: listen address: 127.0.0.1:{port}: cannot listen there: Address already in use"
    )
    assert done.stdout == ""


def test_check_shows_effective_settings_with_secrets_masked(capsys, monkeypatch, write):
    monkeypatch.setenv("GATE_SECRET_KEY", "newest-key-0123456789,older-key-0123456789")
    assert cli.main(["check", "--config", str(write('upstream = "http://127.0.0.1:9000"\n'))]) == 0
    out = capsys.readouterr().out
    assert "newest-key" not in out and "older-key" not in out
    assert "secret_keys = <2 masked>" in out
    assert "upstream=http://127.0.0.1:9000" in out
    assert "purposes (5): improvement, advertising, suggestions, content, security (always on)" in out
    assert (
        "vendors (12): google, yahoo, criteo, adjust, facebook, line, tiktok, x, microsoft, indeed, kyujinbox, a8"
    ) in out
    assert "facebook.pixel" in out


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("port = 'x'\n", "gate.toml: port: expected a number, got 'x'"),
        ("colour = 1\n", "gate.toml: colour: unknown key"),
        ("[[site]]\nupstream = 'ftp://x'\n", "gate.toml: site[0].upstream: expected an http(s):// URL"),
        (
            "[[site]]\nupstream = 'demo'\nvendors = ['google', 'myspace']\n",
            "gate.toml: site[0].vendors: unknown id 'myspace' (known: google, yahoo, criteo, adjust, facebook, line, "
            "tiktok, x, microsoft, indeed, kyujinbox, a8)",
        ),
        (
            "[[site]]\nupstream = 'demo'\ntags = ['facebook.capi']\n",
            "gate.toml: site[0].tags: unknown id 'facebook.capi'",
        ),
        (
            "[[site]]\nupstream = 'demo'\ntag_purposes = { 'google.tag_manager' = ['ads'] }\n",
            "gate.toml: site[0].tag_purposes.google.tag_manager: unknown purpose 'ads'",
        ),
        ("log_level = 'loud'\n", "gate.toml: log_level: expected one of critical, error, warning, info, debug, trace"),
        ("this is not toml", "gate.toml: not valid TOML"),
    ],
    ids=[
        "bad-number",
        "unknown-key",
        "bad-upstream",
        "unknown-vendor",
        "unknown-tag",
        "unknown-purpose",
        "bad-log-level",
        "not-toml",
    ],
)
def test_check_reports_one_line_and_exit_2(capsys, write, toml, expected):
    assert cli.main(["check", "--config", str(write(toml))]) == 2
    captured = capsys.readouterr()
    assert one_line(captured.err).startswith("gate: " + expected)
    assert captured.out == ""


def test_bad_log_level_from_the_environment_names_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("GATE_LOG_LEVEL", "verbose")
    assert cli.main(["check"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "gate: environment: GATE_LOG_LEVEL: expected one of critical, error, warning, info, debug, trace, got 'verbose'"
    )


def test_check_reports_a_bad_vendors_file(capsys, tmp_path):
    bad = tmp_path / "vendors.toml"
    bad.write_text("[purposes]\n", encoding="utf-8")
    assert cli.main(["check", "--vendors", str(bad)]) == 2
    assert one_line(capsys.readouterr().err) == f"gate: {bad}: purposes: expected a table of purposes"


def test_serve_refuses_an_upstream_without_a_key(capsys, uvicorn_run, fake_app):
    assert cli.main(["serve", "--upstream", "http://127.0.0.1:9000"]) == 2
    assert "GATE_SECRET_KEY" in one_line(capsys.readouterr().err)
    assert uvicorn_run == [] and fake_app == []


def test_serve_config_error_starts_nothing(capsys, uvicorn_run, fake_app, tmp_path):
    assert cli.main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert one_line(capsys.readouterr().err) == f"gate: {tmp_path / 'missing.toml'}: file not found"
    assert uvicorn_run == []


def test_serve_demo_warns_loudly_and_runs_uvicorn(capsys, uvicorn_run, fake_app):
    assert cli.main(["serve", "--port", "8123"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("WARNING") >= 4 and "GATE_SECRET_KEY" in captured.err
    assert one_line(captured.out).startswith("gate: serving on http://127.0.0.1:8123 ")
    [(app, options)] = uvicorn_run
    assert app == ("app", fake_app[0]) and fake_app[0].ephemeral_key
    log_config = options.pop("log_config")
    assert issubclass(options.pop("http"), GateProtocol)  # gate's limits on request headers and slow readers
    assert options == dict(
        host="127.0.0.1",
        port=8123,
        loop="auto",
        proxy_headers=False,
        server_header=False,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=25.0,
        timeout_keep_alive=5.0,
    )
    assert log_config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": False}  # ours replaces it


def test_serve_with_a_key_and_declared_vendors_is_quiet(capsys, monkeypatch, uvicorn_run, fake_app, write):
    monkeypatch.setenv("GATE_SECRET_KEY", KEY)
    write("[[site]]\nvendors = []\n")
    assert cli.main(["serve", "--upstream", "http://127.0.0.1:9000", "--host", "::1", "--config", "gate.toml"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert one_line(captured.out) == "gate: serving on http://[::1]:8080 (any host -> http://127.0.0.1:9000)"
    assert fake_app[0].secret_keys == (KEY,)


def test_serve_warns_when_a_site_declares_no_vendors(capsys, monkeypatch, uvicorn_run, fake_app):
    """Without vendors/tags the banner names every company in vendors.toml: say so at start."""
    monkeypatch.setenv("GATE_SECRET_KEY", KEY)
    assert cli.main(["serve", "--upstream", "http://127.0.0.1:9000"]) == 0
    warning = one_line(capsys.readouterr().err)
    assert warning.startswith("gate: WARNING: site (default) declares no `vendors` or `tags`")
    assert "gate init http://127.0.0.1:9000" in warning and uvicorn_run


def test_serve_workers_share_one_demo_key(monkeypatch, uvicorn_run, fake_app, capsys):
    assert cli.main(["serve", "--workers", "3", "--port", "8124"]) == 0
    [(app, options)] = uvicorn_run
    assert app == "gate.cli:_app_from_env"
    assert options["factory"] is True and options["workers"] == 3
    assert fake_app == []  # the parent builds no app; each worker does
    first, second = cli._app_from_env(), cli._app_from_env()
    assert first[1] == second[1]  # same Settings, same key, in every worker
    assert first[1].ephemeral_key and first[1].port == 8124 and first[1].workers == 3
    assert os.environ["GATE_SECRET_KEY"] == first[1].secret_keys[0]


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"upstream": "http://127.0.0.1:9000"},
        {"host": "0.0.0.0", "port": 9999, "workers": 4, "vendors": str(ROOT / "vendors.toml")},
    ],
    ids=["demo", "upstream", "every-flag"],
)
def test_worker_env_reproduces_the_parents_settings(flags):
    env = {"GATE_SECRET_KEY": KEY} if flags.get("upstream") else {}
    parent = settings.load(flags, env)
    child = settings.load({}, {**env, **cli.worker_env(flags, parent)})
    assert child.secret_keys == parent.secret_keys
    for name in ("sites", "host", "port", "workers", "vendors_path"):
        assert getattr(child, name) == getattr(parent, name)


def test_worker_env_keeps_flags_above_the_environment(monkeypatch):
    env = {"GATE_PORT": "1111", "GATE_SECRET_KEY": KEY}
    parent = settings.load({"port": 2222}, env)
    assert settings.load({}, {**env, **cli.worker_env({"port": 2222}, parent)}).port == 2222


def test_parser_takes_the_documented_serve_flags():
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--upstream",
            "http://o:1",
            "--host",
            "::",
            "--port",
            "81",
            "--config",
            "g.toml",
            "--vendors",
            "v.toml",
            "--workers",
            "3",
        ]
    )
    assert cli._flags(args) == {
        "upstream": "http://o:1",
        "host": "::",
        "port": 81,
        "config": "g.toml",
        "vendors": "v.toml",
        "workers": 3,
    }


def test_module_entry_point_fails_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [1, 2]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "gate.cli", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert one_line(done.stderr) == f"gate: {bad}: port: expected a number, got [1, 2]"


def test_check_lists_the_tags_each_site_carries(capsys, write):
    toml = (
        "[[site]]\nhost = 'a.example'\nupstream = 'demo'\nvendors = ['google', 'facebook']\n"
        "tags = ['google.analytics', 'facebook.pixel', 'criteo.onetag']\n"
    )
    assert cli.main(["check", "--config", str(write(toml))]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("site[0]"))
    assert line.endswith("tags=2: google.analytics, facebook.pixel")  # criteo is not among the site's vendors


def test_serve_freezes_what_the_built_app_holds_before_serving(capsys, monkeypatch, fake_app):
    # A full garbage collection would otherwise walk every object of the settings, registries and
    # modules in the middle of some request (bench/gcpause.py): gate serve freezes them first.
    import gc

    import uvicorn

    frozen_when_served: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: frozen_when_served.append(gc.get_freeze_count()))
    monkeypatch.setattr(cli, "check_listen", lambda host, port: None)
    gc.unfreeze()
    try:
        assert cli.main(["serve", "--port", "8123"]) == 0
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
    assert frozen_when_served and frozen_when_served[0] > 1000
