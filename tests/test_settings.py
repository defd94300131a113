"""Settings: flags > environment > gate.toml > defaults; one-line errors; sites; secrets."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gate import settings
from gate.errors import ConfigError
from gate.settings import Settings, Site

ROOT = Path(__file__).resolve().parent.parent
KEY, OLD_KEY = "new-key-0123456789abcdef", "old-key-0123456789abcdef"
UP = "http://127.0.0.1:9000"


@pytest.fixture
def toml(tmp_path, monkeypatch):
    """Writes ./gate.toml and returns the env that points at it."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, **env: str) -> dict[str, str]:
        (tmp_path / "gate.toml").write_text(text, encoding="utf-8")
        return {"GATE_CONFIG": "gate.toml", "GATE_SECRET_KEY": KEY, **env}

    return write


# -- precedence -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "env_name", "values", "default"),
    [
        ("port", "GATE_PORT", (1001, "1002", 1003), 8080),
        ("host", "GATE_HOST", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), "127.0.0.1"),
        ("workers", "GATE_WORKERS", (2, "3", 4), 1),
        ("vendors", "GATE_VENDORS", ("a.toml", "b.toml", "c.toml"), None),
        ("log_level", "GATE_LOG_LEVEL", ("debug", "warning", "error"), "info"),
    ],
    ids=["port", "host", "workers", "vendors", "log_level"],
)
def test_flag_beats_env_beats_file_beats_default(toml, name, env_name, values, default):
    flag, env_value, file_value = values
    attr = "vendors_path" if name == "vendors" else name
    file_text = f"{name} = {file_value!r}\n".replace("'", '"')
    expected = {"port": int, "workers": int}.get(name, str)

    def get(flags: dict, env: dict) -> object:
        return getattr(settings.load(flags, env), attr)

    env = toml(file_text, **{env_name: env_value})
    assert get({name: flag}, env) == expected(flag)
    assert get({name: None}, env) == expected(env_value)  # None = flag not given
    assert get({}, {**env, env_name: ""}) == expected(file_value)  # an empty variable is not set
    assert get({}, {"GATE_SECRET_KEY": KEY}) == default


def test_upstream_flag_beats_env_beats_file(toml):
    env = toml('upstream = "http://file:1"\n', GATE_UPSTREAM="http://env:2")
    assert settings.load({"upstream": "http://flag:3"}, env).sites[0].upstream == "http://flag:3"
    assert settings.load({}, env).sites[0].upstream == "http://env:2"
    assert settings.load({}, {**env, "GATE_UPSTREAM": ""}).sites[0].upstream == "http://file:1"
    assert settings.load({}, {}).sites == (Site(upstream="demo"),)


def test_config_flag_beats_gate_config_env(tmp_path):
    (tmp_path / "a.toml").write_text("port = 1\n", encoding="utf-8")
    (tmp_path / "b.toml").write_text("port = 2\n", encoding="utf-8")
    loaded = settings.load({"config": str(tmp_path / "a.toml")}, {"GATE_CONFIG": str(tmp_path / "b.toml")})
    assert loaded.port == 1 and loaded.config_path == str(tmp_path / "a.toml")


def test_file_only_settings_are_read(toml):
    env = toml(
        "consent_max_age_days = 30\nupstream_connect_timeout = 1.5\nupstream_read_timeout = 9\n"
        "upstream_max_connections = 8\ncarry_over_bytes = 65536\nmax_consent_body = 1024\n"
    )
    loaded = settings.load({}, env)
    assert (
        loaded.consent_max_age_days,
        loaded.upstream_connect_timeout,
        loaded.upstream_read_timeout,
        loaded.upstream_max_connections,
        loaded.carry_over_bytes,
        loaded.max_consent_body,
    ) == (30, 1.5, 9.0, 8, 65536, 1024)


def test_upstream_trailing_slash_is_dropped():
    assert settings.load({"upstream": UP + "/"}, {"GATE_SECRET_KEY": KEY}).sites[0].upstream == UP


# -- errors: file, key, expectation on one line ---------------------------------------------------
ERRORS = [
    ({}, "port = 'x'\n", {}, "gate.toml: port: expected a number, got 'x'"),
    ({}, "port = true\n", {}, "gate.toml: port: expected a number from 0 to 65535, got True"),
    ({}, "port = 99999\n", {}, "gate.toml: port: expected a number from 0 to 65535, got 99999"),
    ({}, "workers = 0\n", {}, "gate.toml: workers: expected a number >= 1, got 0"),
    ({}, "", {"GATE_PORT": "http"}, "environment: GATE_PORT: expected a number, got 'http'"),
    ({"workers": 0}, "", {}, "command line: --workers: expected a number >= 1, got 0"),
    ({"upstream": "127.0.0.1:9000"}, "", {}, "command line: --upstream: expected an http(s):// URL"),
    ({}, "", {"GATE_UPSTREAM": "ftp://x"}, "environment: GATE_UPSTREAM: expected an http(s):// URL"),
    ({}, "colour = 'red'\n", {}, "gate.toml: colour: unknown key (known: "),
    ({}, "[site]\nupstream = 'demo'\n", {}, "gate.toml: site: expected [[site]] tables"),
    ({}, "[[site]]\nhost = 'a.example'\n", {}, "gate.toml: site[0].upstream: expected the origin's URL"),
    ({}, "[[site]]\nupstream = 'demo'\ncolour = 1\n", {}, "gate.toml: site[0].colour: unknown key (known: "),
    (
        {},
        "[[site]]\nupstream = 'demo'\nmode = 'opt-maybe'\n",
        {},
        "gate.toml: site[0].mode: expected one of opt-in, opt-out, got 'opt-maybe'",
    ),
    (
        {},
        "[[site]]\nupstream = 'demo'\ncsp = 'on'\n",
        {},
        "gate.toml: site[0].csp: expected one of off, report-only, enforce, got 'on'",
    ),
    (
        {},
        "[[site]]\nupstream = 'demo'\npublic_scheme = 'ftp'\n",
        {},
        "gate.toml: site[0].public_scheme: expected one of http, https, got 'ftp'",
    ),
    ({}, "[[site]]\nupstream = 'demo'\nvendors = 'google'\n", {}, "gate.toml: site[0].vendors: expected a list of ids"),
    ({}, "[[site]]\nupstream = 'demo'\nhost = ''\n", {}, "gate.toml: site[0].host: expected a host name"),
    (
        {},
        "[[site]]\nupstream = 'demo'\ntag_purposes = ['x']\n",
        {},
        "gate.toml: site[0].tag_purposes: expected a table",
    ),
    (
        {},
        "[[site]]\nupstream = 'demo'\n[[site]]\nupstream = 'demo'\n",
        {},
        "gate.toml: site: two sites share a host (or two default sites)",
    ),
    ({}, "secret_key_file = 'missing.key'\n", {"GATE_SECRET_KEY": ""}, "gate.toml: secret_key_file: cannot read: "),
    ({}, "port = \n", {}, "gate.toml: not valid TOML: "),
    ({}, "", {"GATE_SECRET_KEY": "short"}, "environment: GATE_SECRET_KEY: expected keys of at least 16 characters"),
]


@pytest.mark.parametrize(
    ("flags", "text", "env", "expected"),
    ERRORS,
    ids=[e[3].split(": ")[1] + ":" + e[3].split(": ")[2][:24] for e in ERRORS],
)
def test_errors_name_file_key_and_expectation(toml, flags, text, env, expected):
    with pytest.raises(ConfigError) as info:
        settings.load(flags, toml(text, **env))
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_missing_config_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^.*nope\.toml: file not found$"):
        settings.load({"config": str(tmp_path / "nope.toml")}, {})


# -- sites ----------------------------------------------------------------------------------------
TWO_SITES = """\
upstream = "http://127.0.0.1:9000"

[[site]]
host = "Jobs.Example.JP."
public_scheme = "https"
vendors = ["google", "facebook"]
policy_url = "https://jobs.example.jp/privacy"
tag_purposes = { "google.tag_manager" = ["improvement"] }

[[site]]
host = "kyujin.example.jp"
upstream = "http://10.0.0.2:8000"
tags = ["google.analytics"]
mode = "opt-out"
csp = "enforce"
upstream_host = "origin.internal"
"""


def test_sites_parse_with_their_keys_and_the_shared_upstream(toml):
    loaded = settings.load({}, toml(TWO_SITES))
    jobs, kyujin, default = loaded.sites
    assert jobs == Site(
        upstream=UP,
        host="jobs.example.jp",
        public_scheme="https",
        vendors=("google", "facebook"),
        policy_url="https://jobs.example.jp/privacy",
        tag_purposes={"google.tag_manager": ("improvement",)},
    )
    assert kyujin == Site(
        upstream="http://10.0.0.2:8000",
        host="kyujin.example.jp",
        tags=("google.analytics",),
        mode="opt-out",
        csp="enforce",
        upstream_host="origin.internal",
    )
    assert default == Site(upstream=UP)  # the top-level upstream is also the default site


@pytest.mark.parametrize(
    ("host_header", "expected"),
    [
        ("jobs.example.jp", "jobs.example.jp"),
        ("JOBS.example.jp:443", "jobs.example.jp"),
        ("jobs.example.jp.", "jobs.example.jp"),
        ("kyujin.example.jp:8080", "kyujin.example.jp"),
        ("evil.example", None),
        ("example.jp", None),
        ("", None),
        (None, None),
    ],
    ids=["exact", "case-and-port", "trailing-dot", "port", "unknown", "parent-domain", "empty", "missing"],
)
def test_site_for_routes_by_host_and_unknown_hosts_get_none(toml, host_header, expected):
    loaded = settings.load(
        {},
        toml(
            TWO_SITES.replace('upstream = "http://127.0.0.1:9000"\n', "", 1).replace(
                'vendors = ["google", "facebook"]', 'upstream = "http://a:1"'
            )
        ),
    )
    assert all(s.host for s in loaded.sites)  # no default site
    site = loaded.site_for(host_header)
    assert (site.host if site else None) == expected


def test_site_for_falls_back_to_the_default_site(toml):
    loaded = settings.load({}, toml(TWO_SITES))
    assert loaded.site_for("unknown.example") == Site(upstream=UP)


def test_upstream_alone_is_one_default_site():
    loaded = settings.load({"upstream": UP}, {"GATE_SECRET_KEY": KEY})
    assert loaded.sites == (Site(upstream=UP),)
    assert loaded.site_for("anything.example") == loaded.sites[0]


# -- secrets --------------------------------------------------------------------------------------
def test_repr_masks_every_secret_key():
    loaded = settings.load({"upstream": UP}, {"GATE_SECRET_KEY": f"{KEY},{OLD_KEY}"})
    text = repr(loaded) + str(loaded)
    assert KEY not in text and OLD_KEY not in text
    assert "secret_keys=<2 masked>" in text


def test_secret_keys_keep_newest_first_order():
    loaded = settings.load({"upstream": UP}, {"GATE_SECRET_KEY": f" {KEY} , {OLD_KEY},"})
    assert loaded.secret_keys == (KEY, OLD_KEY)
    assert not loaded.ephemeral_key


def test_secret_key_file_is_read_when_the_environment_has_none(toml, tmp_path):
    (tmp_path / "keys").write_text(f"{KEY},{OLD_KEY}\n", encoding="utf-8")
    env = toml(f'upstream = "{UP}"\nsecret_key_file = "keys"\n', GATE_SECRET_KEY="")
    assert settings.load({}, env).secret_keys == (KEY, OLD_KEY)
    assert settings.load({}, {**env, "GATE_SECRET_KEY": OLD_KEY}).secret_keys == (OLD_KEY,)


def test_an_upstream_without_a_key_refuses_to_start():
    with pytest.raises(ConfigError) as info:
        settings.load({"upstream": UP}, {})
    assert str(info.value).startswith("environment: GATE_SECRET_KEY: not set: run `gate keys new`")


def test_demo_without_a_key_gets_a_fresh_ephemeral_key_each_start():
    first, second = settings.load({}, {}), settings.load({}, {})
    assert first.demo and first.ephemeral_key
    assert len(first.secret_keys) == 1 and first.secret_keys != second.secret_keys


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.load({}, {}).port = 1  # type: ignore[misc]


# -- the README documents every setting -----------------------------------------------------------
def readme_settings_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Settings", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(
    "name",
    sorted(
        (
            {f.name for f in dataclasses.fields(Settings)}
            - {"sites", "secret_keys", "ephemeral_key", "config_path", "vendors_path"}
        )
        | {"upstream", "secret_key_file", "vendors"}
    ),
)
def test_readme_documents_every_top_level_setting(name):
    assert re.search(rf"`{name}`", readme_settings_table()), f"{name} missing from README's settings table"


@pytest.mark.parametrize("name", sorted(f.name for f in dataclasses.fields(Site)))
def test_readme_documents_every_site_key(name):
    assert f"`{name}`" in readme_settings_table(), f"[[site]] {name} missing from README's settings table"


@pytest.mark.parametrize(
    "variable",
    [
        "GATE_UPSTREAM",
        "GATE_SECRET_KEY",
        "GATE_CONFIG",
        "GATE_VENDORS",
        "GATE_HOST",
        "GATE_PORT",
        "GATE_WORKERS",
        "GATE_LOG_LEVEL",
    ],
)
def test_readme_documents_every_environment_variable(variable):
    assert f"`{variable}`" in readme_settings_table()
