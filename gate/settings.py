"""Settings: parsed once at start-up, frozen, validated. Flags beat environment beat gate.toml beat
defaults. Secrets are masked in repr. Every key here is in the README's settings table."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

MODES = ("opt-in", "opt-out")
UNDECLARED = ("strip", "report")
CSP_MODES = ("off", "report-only", "enforce")
COMPRESS = ("auto", "off")
DEMO_UPSTREAM = "demo"
CORNERS = ("bottom-left", "bottom-right", "top-left", "top-right")


@dataclass(frozen=True)
class Site:
    """One public site and the origin behind it."""

    upstream: str  # "http(s)://host[:port]" or "demo"
    host: str | None = None  # public Host header; None = the default site
    public_scheme: str | None = None  # None = as the request came (or X-Forwarded-Proto from a trusted proxy)
    vendors: tuple[str, ...] | None = None  # vendors this site carries; None = all in vendors.toml
    tags: tuple[str, ...] | None = None  # tags this site carries; None = all of its vendors' tags
    tag_purposes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    policy_url: str = "/privacy"
    mode: str = "opt-in"
    csp: str = "report-only"
    csp_hosts: tuple[str, ...] = ()  # the site's own other hosts (CDN, API) its pages may load from
    personal_data: bool = False  # let scripts send hashed e-mail / phone numbers to an allowed vendor
    upstream_host: str | None = None  # Host header sent upstream; None = the visitor's
    notice_link: bool = True  # gate's own 「外部送信について」 link beside the settings button
    settings_button: str = "bottom-left"  # the floating button's corner (a [data-gate-settings] element hosts it)
    settings_button_offset: int = 8  # px from the corner's two edges
    # Pages with application forms ("/apply", "/jobs/*/apply": * is one path segment). gate adds every
    # path where it reads a form with name, e-mail or phone inputs. Tags that read forms run there only
    # for recipients the visitor gave the separate consent to personal data.
    form_paths: tuple[str, ...] = ()
    # Third-party hosts no vendor declares: "strip" (the default in opt-in mode) removes scripts, frames,
    # pixels, beacons and connection hints to them; "report" (the default in opt-out mode) only counts.
    undeclared: str | None = None
    # The site's own words added to a tag's "information sent" (the job ids and titles it passes to
    # Google and Meta, say) and cookies it lists for a tag: the notice shows them, and a consent given
    # before they were added no longer covers that tag.
    information: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    information_en: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tag_cookies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    allow_hosts: Mapping[str, str] = field(default_factory=dict)  # host -> why the site needs it
    # Rewritten pages as br, zstd or gzip by the visitor's Accept-Encoding ("auto"), or always identity
    # ("off": a front proxy compresses them).
    compress: str = "auto"

    @property
    def strips_undeclared(self) -> bool:
        return (self.undeclared or ("strip" if self.mode == "opt-in" else "report")) == "strip"

    @property
    def own_hosts(self) -> tuple[str, ...]:
        """allow_hosts and csp_hosts as bare host names: the third parties that are no recipient."""
        hosts = [*self.allow_hosts, *(h.split("://")[-1].split("/")[0].split(":")[0] for h in self.csp_hosts)]
        return tuple(dict.fromkeys(h.lower().removeprefix("*.") for h in hosts))

    @property
    def is_demo(self) -> bool:
        return self.upstream == DEMO_UPSTREAM


@dataclass(frozen=True)
class Settings:
    sites: tuple[Site, ...]
    secret_keys: tuple[str, ...] = field(repr=False)
    ephemeral_key: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    vendors_path: str | None = None
    config_path: str | None = None
    consent_max_age_days: int = 180
    reconsent_days: int = 182  # ask again after this many days (capped at 13 months)
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 30.0
    upstream_max_connections: int = 32
    upstream_response_timeout: float = 120.0  # one origin response, request sent to last byte
    upstream_share_per_client: float = 0.25  # of upstream_max_connections, for one visitor address
    upstream_share_per_path: float = 0.5  # of upstream_max_connections, for one site's path
    client_header_timeout: float = 10.0  # a request's headers must arrive within this
    client_write_timeout: float = 30.0  # a visitor who reads nothing for this long is dropped
    keep_alive_timeout: float = 5.0  # an idle kept-alive connection is closed after this
    max_request_header_bytes: int = 64 * 1024  # request line and headers; larger: 431
    carry_over_bytes: int = 256 * 1024
    max_page_bytes: int = 64 * 1024 * 1024  # a page's size once decoded; past it: 502 page, or cut
    max_consent_body: int = 8 * 1024
    log_level: str = "info"
    trusted_proxies: tuple[str, ...] = ()  # IPs / CIDR networks whose X-Forwarded-* gate believes
    shutdown_timeout: float = 25.0  # seconds in-flight responses get to finish after SIGTERM
    store: str = "gate-data/gate.sqlite3"  # the ledger and receipts: SQLite path, postgresql:// URL, or "off"
    report_token: str | None = None  # GET /_gate/report, /_gate/metrics: bearer token or basic-auth password
    retention_days: int = 400
    flush_interval: float = 5.0  # seconds between the ledger's batched writes
    path_templates: tuple[str, ...] = ()  # e.g. "/jobs/{id}": how the ledger collapses paths

    def __repr__(self) -> str:  # secrets masked
        shown = ", ".join(f"{f.name}={shown_value(self, f.name)}" for f in fields(self) if f.name != "secret_keys")
        return f"Settings({shown}, secret_keys=<{len(self.secret_keys)} masked>)"

    @property
    def demo(self) -> bool:
        return any(s.is_demo for s in self.sites)

    def site_for(self, host_header: str | None) -> Site | None:
        """The site a request's Host belongs to; the default site when none is named."""
        name = (host_header or "").split(":")[0].lower().rstrip(".")
        default = None
        for site in self.sites:
            if site.host is None:
                default = site
            elif site.host == name:
                return site
        return default


_TOP_KEYS = {f.name for f in fields(Settings)} - {"sites", "secret_keys", "ephemeral_key", "config_path"}
_TOP_KEYS |= {"upstream", "secret_key_file", "site", "vendors"}
_SITE_KEYS = {f.name for f in fields(Site)}
# A CSP host-source: [scheme://]host-or-*.host[:port][/path]. Nothing that could end the directive.
_CSP_HOST = re.compile(r"^(?:https?://)?(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::(?:\d{1,5}|\*))?(?:/[^\s;,']*)?$")


def _check_upstream(value: Any, file: str, key: str) -> str:
    if value == DEMO_UPSTREAM:
        return DEMO_UPSTREAM
    if not isinstance(value, str):
        raise ConfigError(file, key, "expected a URL such as http://127.0.0.1:8000")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(file, key, f"expected an http(s):// URL such as http://127.0.0.1:8000, got {value!r}")
    return value.rstrip("/")


def _site(raw: Any, file: str, i: int, top_upstream: str | None) -> Site:
    key = f"site[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(file, key, "expected a table ([[site]])")
    unknown = set(raw) - _SITE_KEYS
    if unknown:
        raise ConfigError(file, f"{key}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(_SITE_KEYS))})")
    upstream = raw.get("upstream", top_upstream)
    if upstream is None:
        raise ConfigError(file, f"{key}.upstream", "expected the origin's URL")
    kw: dict[str, Any] = {"upstream": _check_upstream(upstream, file, f"{key}.upstream")}
    if "host" in raw:
        if not isinstance(raw["host"], str) or not raw["host"]:
            raise ConfigError(file, f"{key}.host", "expected a host name such as jobs.example.jp")
        kw["host"] = raw["host"].lower().rstrip(".")
    for name, allowed in (
        ("mode", MODES),
        ("csp", CSP_MODES),
        ("public_scheme", ("http", "https")),
        ("compress", COMPRESS),
    ):
        if name in raw:
            if raw[name] not in allowed:
                raise ConfigError(file, f"{key}.{name}", f"expected one of {', '.join(allowed)}, got {raw[name]!r}")
            kw[name] = raw[name]
    for name in ("vendors", "tags"):
        if name in raw:
            v = raw[name]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(file, f"{key}.{name}", "expected a list of ids")
            kw[name] = tuple(v)
    for name in ("policy_url", "upstream_host"):
        if name in raw:
            if not isinstance(raw[name], str):
                raise ConfigError(file, f"{key}.{name}", "expected a string")
            kw[name] = raw[name]
    if "tag_purposes" in raw:
        tp = raw["tag_purposes"]
        if not isinstance(tp, dict) or not all(isinstance(v, list) for v in tp.values()):
            raise ConfigError(
                file, f"{key}.tag_purposes", 'expected a table such as { "google.tag_manager" = ["improvement"] }'
            )
        kw["tag_purposes"] = {k: tuple(v) for k, v in tp.items()}
    if "csp_hosts" in raw:
        hosts = raw["csp_hosts"]
        if not isinstance(hosts, list) or not all(isinstance(h, str) and _CSP_HOST.match(h) for h in hosts):
            raise ConfigError(
                file,
                f"{key}.csp_hosts",
                'expected a list of hosts such as ["cdn.example.jp", "*.example.jp", "https://api.example.jp"]',
            )
        kw["csp_hosts"] = tuple(h.lower() for h in hosts)
    for name in ("personal_data", "notice_link"):
        if name in raw:
            if not isinstance(raw[name], bool):
                raise ConfigError(file, f"{key}.{name}", "expected true or false")
            kw[name] = raw[name]
    if "settings_button" in raw:
        if raw["settings_button"] not in CORNERS:
            raise ConfigError(
                file, f"{key}.settings_button", f"expected one of {', '.join(CORNERS)}, got {raw['settings_button']!r}"
            )
        kw["settings_button"] = raw["settings_button"]
    if "settings_button_offset" in raw:
        kw["settings_button_offset"] = _number(
            raw["settings_button_offset"], file, f"{key}.settings_button_offset", int, 0, 500
        )
    for name in ("information", "information_en", "tag_cookies"):
        if name in raw:
            table = raw[name]
            if not isinstance(table, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) and x for x in v) for v in table.values()
            ):
                raise ConfigError(
                    file,
                    f"{key}.{name}",
                    "expected a table of tag id = [strings], such as "
                    '{ "google.analytics" = ["閲覧した求人のIDとタイトル"] }',
                )
            kw[name] = {k: tuple(v) for k, v in table.items()}
    if "undeclared" in raw:
        if raw["undeclared"] not in UNDECLARED:
            raise ConfigError(
                file, f"{key}.undeclared", f"expected one of {', '.join(UNDECLARED)}, got {raw['undeclared']!r}"
            )
        kw["undeclared"] = raw["undeclared"]
    if "allow_hosts" in raw:
        allow = raw["allow_hosts"]
        if not isinstance(allow, dict) or not all(
            isinstance(h, str) and _HOST.match(h) and isinstance(why, str) and why.strip() for h, why in allow.items()
        ):
            raise ConfigError(
                file,
                f"{key}.allow_hosts",
                'expected a table of host = "reason", such as '
                '{ "cdn.example.jp" = "our images", '
                '"www.youtube-nocookie.com" = "job videos" }',
            )
        kw["allow_hosts"] = {h.lower(): why.strip() for h, why in allow.items()}
    if "form_paths" in raw:
        paths = raw["form_paths"]
        if not isinstance(paths, list) or not all(isinstance(x, str) and _FORM_PATH.match(x) for x in paths):
            raise ConfigError(
                file,
                f"{key}.form_paths",
                'expected a list of paths such as ["/apply", "/jobs/*/apply"], * standing for one path segment',
            )
        kw["form_paths"] = tuple(paths)
    return Site(**kw)


def _number(value: Any, file: str, key: str, kind: type, minimum: float, maximum: float | None = None) -> Any:
    try:
        n = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(file, key, f"expected a number, got {value!r}") from None
    if maximum is not None and (isinstance(value, bool) or not minimum <= n <= maximum):
        raise ConfigError(file, key, f"expected a number from {minimum} to {maximum}, got {value!r}")
    if isinstance(value, bool) or n < minimum:
        raise ConfigError(file, key, f"expected a number >= {minimum}, got {value!r}")
    return n


def _networks(value: Any, file: str, key: str) -> tuple[str, ...]:
    """trusted_proxies: a list (gate.toml) or a comma-separated string (environment) of IPs / CIDRs."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ConfigError(file, key, 'expected a list of IP addresses or networks such as ["10.0.0.0/8"]')
    out = []
    for item in (x.strip() for x in items if x.strip()):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                file, key, f"expected an IP address or network such as 10.0.0.0/8, got {item!r}"
            ) from None
    return tuple(out)


def shown_value(conf: Settings, name: str) -> str:
    """A setting as `gate check` and repr show it: the report token masked, a store URL's password hidden."""
    value = getattr(conf, name)
    if name == "report_token" and value:
        return "<masked>"
    if name == "store":
        from .recording.store import mask_url

        return repr(mask_url(value))
    return repr(value)


_HOST = re.compile(r"^(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_FORM_PATH = re.compile(r"^(/([^/*?#]*|\*))+/?$")


def form_path_matcher(paths: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled pattern for a site's form_paths (None when it has none)."""
    if not paths:
        return None
    parts = (
        "/".join("[^/]+" if seg == "*" else re.escape(seg) for seg in p.rstrip("/").split("/")) + "/?" for p in paths
    )
    return re.compile("^(?:" + "|".join(parts) + ")$")


_TEMPLATE = re.compile(r"^(/([^/{}]*|\{[A-Za-z_][A-Za-z0-9_]*\}))+/?$")


def _recording(pick: Any) -> dict[str, Any]:
    """The ledger's settings: store, report_token, retention_days, flush_interval, path_templates."""
    kw: dict[str, Any] = {}
    value, where, key = pick("store", "GATE_STORE")
    if value is not None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(where, key, 'expected a file path, a postgresql:// URL or "off"')
        kw["store"] = value.strip()
    value, where, key = pick("report_token", "GATE_REPORT_TOKEN")
    if value is not None:
        if not isinstance(value, str) or len(value.strip()) < 16:
            raise ConfigError(where, key, "expected a token of at least 16 characters (use `gate keys new`)")
        kw["report_token"] = value.strip()
    for name, kind, minimum in (("retention_days", int, 1), ("flush_interval", float, 0.05)):
        value, where, key = pick(name)
        if value is not None:
            kw[name] = _number(value, where, key, kind, minimum)
    value, where, key = pick("path_templates")
    if value is not None:
        if not isinstance(value, list) or not all(isinstance(t, str) and _TEMPLATE.match(t) for t in value):
            raise ConfigError(
                where, key, 'expected a list of paths such as ["/jobs/{id}"], {name} standing for one path segment'
            )
        kw["path_templates"] = tuple(value)
    return kw


def load(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from command-line flags (None = not given), the environment and gate.toml."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    config_path = flags.get("config") or env.get("GATE_CONFIG")
    file_data: dict[str, Any] = {}
    file = config_path or "gate.toml"
    if config_path:
        try:
            file_data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(file, "", "file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(file, "", f"not valid TOML: {e}") from None
        unknown = set(file_data) - _TOP_KEYS
        if unknown:
            raise ConfigError(file, sorted(unknown)[0], f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")

    def pick(name: str, env_name: str | None = None) -> Any:
        if name in flags:
            return flags[name], "command line", f"--{name}"
        if env_name and env_name in env and env[env_name] != "":
            return env[env_name], "environment", env_name
        if name in file_data:
            return file_data[name], file, name
        return None, "", ""

    upstream, where, key = pick("upstream", "GATE_UPSTREAM")
    if upstream is not None:
        upstream = _check_upstream(upstream, where, key)
    site_list = file_data.get("site", [])
    if not isinstance(site_list, list):
        raise ConfigError(file, "site", "expected [[site]] tables")
    sites = [_site(s, file, i, upstream) for i, s in enumerate(site_list)]
    if upstream is not None and not any(s.host is None for s in sites):
        sites.append(Site(upstream=upstream))
    if not sites:
        sites = [Site(upstream=DEMO_UPSTREAM)]
    hosts = [s.host for s in sites]
    if len(set(hosts)) != len(hosts):
        raise ConfigError(file, "site", "two sites share a host (or two default sites)")

    kw: dict[str, Any] = {}
    for name, env_name, kind, minimum in (
        ("port", "GATE_PORT", int, 0),
        ("workers", "GATE_WORKERS", int, 1),
        ("consent_max_age_days", None, int, 1),
        ("upstream_connect_timeout", None, float, 0.01),
        ("upstream_read_timeout", None, float, 0.01),
        ("upstream_max_connections", None, int, 1),
        ("carry_over_bytes", None, int, 4096),
        ("max_consent_body", None, int, 256),
        ("max_page_bytes", None, int, 65536),
        ("reconsent_days", None, int, 1),
        ("shutdown_timeout", None, float, 0),
        ("upstream_response_timeout", None, float, 0.01),
        ("client_header_timeout", None, float, 0.01),
        ("client_write_timeout", None, float, 0.01),
        ("keep_alive_timeout", None, float, 0.01),
        ("max_request_header_bytes", None, int, 1024),
    ):
        value, where, key = pick(name, env_name)
        if value is not None:
            kw[name] = _number(value, where, key, kind, minimum, 65535 if name == "port" else None)
    for name in ("upstream_share_per_client", "upstream_share_per_path"):
        value, where, key = pick(name)
        if value is not None:
            kw[name] = _number(value, where, key, float, 0.01)
            if kw[name] > 1:
                raise ConfigError(
                    where, key, f"expected a fraction of upstream_max_connections in (0, 1], got {value!r}"
                )
    for name, env_name in (("host", "GATE_HOST"), ("log_level", "GATE_LOG_LEVEL")):
        value, where, key = pick(name, env_name)
        if value is not None:
            kw[name] = str(value)
    value, where, key = pick("trusted_proxies", "GATE_TRUSTED_PROXIES")
    if value is not None:
        kw["trusted_proxies"] = _networks(value, where, key)
    kw.update(_recording(pick))
    vendors_path, _, _ = pick("vendors", "GATE_VENDORS")
    kw["vendors_path"] = str(vendors_path) if vendors_path else None

    raw_keys = env.get("GATE_SECRET_KEY", "")
    if not raw_keys and "secret_key_file" in file_data:
        try:
            raw_keys = Path(str(file_data["secret_key_file"])).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(file, "secret_key_file", f"cannot read: {e.strerror}") from None
    keys = tuple(k.strip() for k in raw_keys.split(",") if k.strip())
    ephemeral = False
    if not keys:
        if not all(s.is_demo for s in sites):
            raise ConfigError(
                "environment",
                "GATE_SECRET_KEY",
                "not set: run `gate keys new` and export GATE_SECRET_KEY=<key> (newest first, comma-separated)",
            )
        keys, ephemeral = (secrets.token_urlsafe(32),), True
    elif any(len(k) < 16 for k in keys):
        raise ConfigError(
            "environment", "GATE_SECRET_KEY", "expected keys of at least 16 characters (use `gate keys new`)"
        )
    return Settings(sites=tuple(sites), secret_keys=keys, ephemeral_key=ephemeral, config_path=config_path, **kw)
