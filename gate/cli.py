"""`gate ...` commands -> Settings -> uvicorn. A user's mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__, cli_report, settings, vendors
from .errors import ConfigError

# Flags of `gate serve`, the environment variable each one travels in to --workers processes.
SERVE_FLAGS = {
    "upstream": "GATE_UPSTREAM",
    "host": "GATE_HOST",
    "port": "GATE_PORT",
    "config": "GATE_CONFIG",
    "vendors": "GATE_VENDORS",
    "workers": "GATE_WORKERS",
}
EPHEMERAL_ENV = "GATE_EPHEMERAL_KEY"  # set by the parent only: the key in GATE_SECRET_KEY is the demo's
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DEMO_WARNING = """\
gate: WARNING ============================================================
gate: WARNING  Demo mode without GATE_SECRET_KEY: consent cookies are signed
gate: WARNING  with a random key made at this start. Every consent given now
gate: WARNING  is lost on restart (visitors see the banner again).
gate: WARNING  Outside a trial:  gate keys new  and  export GATE_SECRET_KEY=<key>
gate: WARNING ============================================================"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (argparse prints the usage above it: two)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gate", description="A consent-gating reverse proxy.")
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def files(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="FILE", help="gate.toml (env GATE_CONFIG; default: none)")
        p.add_argument("--vendors", metavar="FILE", help="vendors.toml (env GATE_VENDORS; default: the shipped one)")

    def limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("--max-pages", type=int, default=30, metavar="N", help="pages to read at most (default 30)")
        p.add_argument(
            "--max-seconds", type=float, default=60.0, metavar="S", help="time to crawl at most (default 60)"
        )
        p.add_argument(
            "--max-bytes",
            type=int,
            default=32 * 1024 * 1024,
            metavar="B",
            help="bytes to read at most, in all (default 32 MiB)",
        )

    serve = commands.add_parser("serve", help="run the proxy (the demo site when no upstream is set)")
    serve.add_argument(
        "--upstream", metavar="URL", help="origin to proxy, e.g. http://127.0.0.1:8000 (env GATE_UPSTREAM)"
    )
    serve.add_argument("--host", help="address to listen on (env GATE_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (env GATE_PORT; default 8080)")
    files(serve)
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes (env GATE_WORKERS; default 1)")
    keys = commands.add_parser("keys", help="signing keys")
    keys.add_argument("action", choices=["new"], help="new: print a fresh key for GATE_SECRET_KEY")
    files(commands.add_parser("check", help="validate gate.toml and vendors.toml, show the effective settings"))
    scan = commands.add_parser(
        "scan", help="show the tags on one page, kept or stripped under a consent; or a whole site's tags and hosts"
    )
    scan.add_argument("target", nargs="?", metavar="URL|FILE", help="an http(s) URL to fetch, or an HTML file")
    whole = scan.add_mutually_exclusive_group()
    whole.add_argument(
        "--crawl",
        metavar="URL",
        help="read the site from URL on, following same-site links and /sitemap.xml: every tag and "
        "third-party host met, with its pages, and allow_hosts / vendors.toml drafts",
    )
    whole.add_argument("--sitemap", metavar="URL", help="as --crawl, over the pages a sitemap lists")
    limits(scan)
    scan.add_argument(
        "--consent",
        default="reject_all",
        metavar="CHOICE",
        help="accept_all, reject_all (default) or purposes=a,b (the purposes accepted)",
    )
    scan.add_argument("--json", action="store_true", help="machine-readable output")
    scan.add_argument("--base", metavar="URL", help="the page's public URL, for a FILE (default: file://…)")
    scan.add_argument("--vendors", metavar="FILE", help="vendors.toml (env GATE_VENDORS; default: the shipped one)")
    init = commands.add_parser("init", help="crawl a site and draft the gate.toml that declares its tags")
    init.add_argument("url", metavar="URL", help="the origin's URL (not gate's), e.g. http://127.0.0.1:8000/")
    init.add_argument("--output", default="gate.toml", metavar="FILE", help="where the draft goes (default gate.toml)")
    init.add_argument("--force", action="store_true", help="replace FILE when it exists")
    limits(init)
    init.add_argument("--vendors", metavar="FILE", help="vendors.toml (env GATE_VENDORS; default: the shipped one)")
    cli_report.add_parsers(commands, files)
    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(cli_report.consent_id_last(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as e:  # --help, --version, usage errors: argparse has printed already
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        print("gate: a command is needed: serve, check, scan, … (see gate --help)", file=sys.stderr)
        return 2
    try:
        code = {
            "serve": serve,
            "keys": keys_new,
            "check": check,
            "scan": scan_page,
            "init": init_site,
            "version": version,
            **cli_report.COMMANDS,
        }[args.command](args)
        sys.stdout.flush()  # here, so a closed pipe is met inside the try rather than at exit
        return code
    except ConfigError as e:
        print(f"gate: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `gate scan … | head`: the reader has what it wanted; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail again
        return 1


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in SERVE_FLAGS}


def load_all(flags: Mapping[str, Any], env: Mapping[str, str]) -> tuple[settings.Settings, vendors.Registry]:
    """Settings and the registry, cross-checked; raises ConfigError."""
    conf = settings.load(flags, env)
    registry = vendors.load(conf.vendors_path)
    file = conf.config_path or "gate.toml"
    if conf.log_level.lower() not in LOG_LEVELS:
        where = ("environment", "GATE_LOG_LEVEL") if env.get("GATE_LOG_LEVEL") else (file, "log_level")
        raise ConfigError(*where, f"expected one of {', '.join(LOG_LEVELS)}, got {conf.log_level!r}")
    for i, site in enumerate(conf.sites):
        for key, ids, known in (
            ("vendors", site.vendors, registry.vendors),
            ("tags", site.tags, registry.tags),
            ("tag_purposes", site.tag_purposes, registry.tags),
            ("information", site.information, registry.tags),
            ("information_en", site.information_en, registry.tags),
            ("tag_cookies", site.tag_cookies, registry.tags),
        ):
            unknown = [x for x in ids or () if x not in known]
            if unknown:
                raise ConfigError(file, f"site[{i}].{key}", f"unknown id '{unknown[0]}' (known: {', '.join(known)})")
        for tag_id, purposes in site.tag_purposes.items():
            unknown = [p for p in purposes if p not in registry.purposes]
            if unknown:
                raise ConfigError(
                    file,
                    f"site[{i}].tag_purposes.{tag_id}",
                    f"unknown purpose '{unknown[0]}' (known: {', '.join(registry.purposes)})",
                )
    return conf, registry


def worker_env(flags: Mapping[str, Any], conf: settings.Settings) -> dict[str, str]:
    """The environment that makes every --workers process load the same Settings as this one."""
    env = {var: str(flags[name]) for name, var in SERVE_FLAGS.items() if flags.get(name) is not None}
    if conf.ephemeral_key:  # made once here, so all workers sign and verify with the same key
        env["GATE_SECRET_KEY"] = conf.secret_keys[0]
        env[EPHEMERAL_ENV] = "1"
    return env


def _app_from_env() -> Any:
    """uvicorn factory (`gate.cli:_app_from_env`) run in each worker process."""
    from . import server
    from .app import create_app

    conf = settings.load({}, os.environ)
    if os.environ.get(EPHEMERAL_ENV) == "1":
        conf = dataclasses.replace(conf, ephemeral_key=True)
    server.configure(conf)  # this worker's connection limits (uvicorn imported GateProtocol by name)
    app = create_app(conf)
    settle_memory()
    return app


def settle_memory() -> None:
    """Once the app is built: what exists now (settings, registries, the vendor catalogue, imported
    modules) lives as long as the process, so the cycle collector stops walking it. Without this, each
    full collection walked all of it in the middle of some request (bench/README.md, head-of-line)."""
    gc.collect()
    gc.freeze()


def _public_url(conf: settings.Settings) -> str:
    host = f"[{conf.host}]" if ":" in conf.host else conf.host
    return f"http://{host}:{conf.port}"


def serve(args: argparse.Namespace) -> int:
    flags = _flags(args)
    conf, registry = load_all(flags, os.environ)
    check_listen(conf.host, conf.port)
    if conf.ephemeral_key:
        print(DEMO_WARNING, file=sys.stderr)
    for line in undeclared_warnings(conf, registry) + uncarried_warnings(conf, registry):
        print(line, file=sys.stderr)
    import uvicorn  # imported late: `gate check` and `gate keys new` need no server

    from . import logs, server

    server.raise_open_files_limit()
    # proxy_headers off: gate.forwarded believes X-Forwarded-* from trusted_proxies only. SIGTERM: stop
    # accepting, give in-flight responses shutdown_timeout seconds, then the lifespan's shutdown.
    options: dict[str, Any] = dict(
        host=conf.host,
        port=conf.port,
        loop="auto",
        proxy_headers=False,
        server_header=False,
        log_level=conf.log_level.lower(),
        access_log=False,
        log_config=logs.config(conf.log_level),
        timeout_graceful_shutdown=conf.shutdown_timeout,
        **server.options(conf),
    )
    app: Any
    if conf.workers > 1:
        os.environ.update(worker_env(flags, conf))
        from .recording.metrics_setup import prepare_multiprocess

        prepare_multiprocess()  # every worker's metric files in one directory (PROMETHEUS_MULTIPROC_DIR)
        app = "gate.cli:_app_from_env"
        options.update(workers=conf.workers, factory=True)
    else:
        from .app import create_app

        app = create_app(conf)
        settle_memory()
    upstreams = ", ".join(f"{s.host or 'any host'} -> {s.upstream}" for s in conf.sites)
    print(f"gate: serving on {_public_url(conf)} ({upstreams})", flush=True)
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(app, **options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def check_listen(host: str, port: int) -> None:
    """Raise ConfigError when gate could not listen on host:port, before announcing anything (uvicorn
    would log six lines and exit 3). Bound as uvicorn binds, with SO_REUSEADDR, then let go."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as e:
        raise ConfigError("listen address", f"{host}:{port}", f"cannot listen there: {e.strerror or e}") from None


def _stopped(signum: int, frame: Any) -> None:
    """SIGTERM before uvicorn takes over, or the one uvicorn raises again after draining: a clean stop
    (exit 0), not death by signal."""
    raise SystemExit(0)


def scan_page(args: argparse.Namespace) -> int:
    from . import scan  # imported late: html5lib is only needed here

    if args.crawl or args.sitemap:
        if args.target:
            raise ConfigError("command line", "URL|FILE", "give a page, or --crawl/--sitemap, not both")
        return scan_site(args)
    if not args.target:
        raise ConfigError("command line", "URL|FILE", "expected a page (URL or file), or --crawl URL / --sitemap URL")
    registry = vendors.load(args.vendors or os.environ.get("GATE_VENDORS") or None)
    body, page_url, content_type = scan.read(args.target, args.base)
    report = scan.scan(body, page_url, registry, args.consent, content_type, source=args.target)
    print(scan.dumps(report) if args.json else scan.as_text(report))
    return 0


def _check_limits(args: argparse.Namespace) -> None:
    for flag, value in (
        ("--max-pages", args.max_pages),
        ("--max-seconds", args.max_seconds),
        ("--max-bytes", args.max_bytes),
    ):
        if value <= 0:
            raise ConfigError("command line", flag, f"expected a number > 0, got {value}")


def scan_site(args: argparse.Namespace) -> int:
    """`gate scan --crawl URL` / `--sitemap URL`: gate init's crawl, reported rather than written."""
    import json

    from . import draft

    draft.origin_of(args.crawl or args.sitemap)  # an http(s) URL, or one line
    _check_limits(args)
    registry = vendors.load(args.vendors or os.environ.get("GATE_VENDORS") or None)
    found = draft.crawl(
        args.crawl or "", registry, args.max_pages, args.max_seconds, args.max_bytes, sitemap=args.sitemap
    )
    if args.json:
        print(json.dumps(draft.site_json(found, registry), ensure_ascii=False, indent=2))
    else:
        print(draft.site_report(found, registry))
    return 0


def init_site(args: argparse.Namespace) -> int:
    from . import draft  # imported late, as scan: only this command crawls

    upstream = draft.origin_of(args.url)
    if os.path.exists(args.output) and not args.force:
        raise ConfigError(args.output, "", "exists already: pass --force to replace it, or --output another file")
    _check_limits(args)
    registry = vendors.load(args.vendors or os.environ.get("GATE_VENDORS") or None)
    found = draft.crawl(args.url, registry, args.max_pages, args.max_seconds, args.max_bytes)
    text = draft.draft(found, registry, upstream)
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise ConfigError(args.output, "", f"cannot write: {e.strerror}") from None
    print(draft.summary(found, registry))
    print(f"\nwrote {args.output}: read it, then `gate check --config {args.output}`")
    return 0


def undeclared_warnings(conf: settings.Settings, registry: vendors.Registry) -> list[str]:
    """One line per proxied site that declares neither vendors nor tags: its banner and notice would
    name every company in vendors.toml."""
    return [
        f"gate: WARNING: site {site.host or '(default)'} declares no `vendors` or `tags`: its banner and "
        f"notice name all {len(registry.vendors)} vendors and {len(registry.tags)} tags of vendors.toml. "
        f"Draft them with `gate init {site.upstream}`"
        for site in conf.sites
        if not site.is_demo and site.vendors is None and site.tags is None
    ]


# How many of a site's most recent pages the start check reads. Enough that a tag on only some kinds of
# page (a conversion tag on the application-complete page, a retargeting tag on job pages) appears among
# them on any site with traffic; few enough that a vendor dropped last week still shows as dropped, not
# hidden behind months of history. The store keeps pages per day, so the check reads whole days back to
# the one holding the N-th most recent page; a site with fewer pages recorded is not checked.
CARRIED_PAGES = 500


def uncarried_warnings(conf: settings.Settings, registry: vendors.Registry, last: int | None = None) -> list[str]:
    """One line per vendor a site declares (vendors/tags in gate.toml) whose tags none of the site's last
    ``last`` pages carried (kept or stripped), read from the store's ledger. Nothing when the store is off,
    absent or unreadable: the check must never keep gate from starting."""
    from .recording import ledger, store

    last = CARRIED_PAGES if last is None else last
    declaring = [s for s in conf.sites if not s.is_demo and (s.vendors is not None or s.tags is not None)]
    where = conf.store
    if not declaring or where == store.OFF or not (store.is_postgres(where) or os.path.exists(where)):
        return []
    lines = []
    try:
        db = store.open_store(where)
    except Exception:
        return []
    try:
        for site in declaring:
            label = ledger.site_label(site)
            per_day: dict[str, int] = {}
            for day, _banner, _gpc, n in db.query("pages", label, "0000-00-00", "9999-12-31"):
                per_day[day] = per_day.get(day, 0) + int(n)
            seen, first_day = 0, None
            for day in sorted(per_day, reverse=True):
                seen, first_day = seen + per_day[day], day
                if seen >= last:
                    break
            if first_day is None or seen < last:
                continue
            carried = {
                registry.tags[tag].vendor
                for _day, tag, outcome, _reason, _n in db.query("tags", label, first_day, "9999-12-31")
                if outcome in ("served", "stripped") and tag in registry.tags
            }
            declared = dict.fromkeys(
                registry.tags[t].vendor for t in registry.tags if t in registry.carried(site.vendors, site.tags)
            )
            for vendor in declared:
                if vendor not in carried:
                    lines.append(
                        f"gate: WARNING: site {site.host or '(default)'} declares {vendor} but none of its last "
                        f"{seen} pages (since {first_day}) carried a {vendor} tag: remove it from vendors, or "
                        "the notice names a recipient that gets nothing"
                    )
    except Exception:
        return lines
    finally:
        db.close()
    return lines


def keys_new(args: argparse.Namespace) -> int:
    print(secrets.token_urlsafe(32))
    return 0


def check(args: argparse.Namespace) -> int:
    conf, registry = load_all(_flags(args), os.environ)
    print(f"gate {__version__}: configuration OK")
    for f in dataclasses.fields(conf):
        if f.name == "sites":
            continue
        value = f"<{len(conf.secret_keys)} masked>" if f.name == "secret_keys" else settings.shown_value(conf, f.name)
        print(f"  {f.name} = {value}")

    for i, site in enumerate(conf.sites):
        carried = [t for t in registry.tags if t in registry.carried(site.vendors, site.tags)]
        print(
            f"  site[{i}] host={site.host or '(default)'} upstream={site.upstream} mode={site.mode} "
            f"csp={site.csp} policy_url={site.policy_url} tags={len(carried)}: {', '.join(carried)}"
        )
    purposes = [p.id + ("" if p.refusable else " (always on)") for p in registry.purposes.values()]
    print(f"scan: {scan_backend()}")
    print(f"vendors.toml: policy version {registry.version}")
    print(f"  purposes ({len(purposes)}): {', '.join(purposes)}")
    print(f"  vendors ({len(registry.vendors)}): {', '.join(registry.vendors)}")
    print(f"  tags ({len(registry.tags)}): {', '.join(registry.tags)}")
    return 0


def scan_backend() -> str:
    """Which page scan this install runs: the C extension, or the pure-Python one it falls back to."""
    try:
        from . import _fastscan  # noqa: F401  (built at install time when a C compiler was there)
    except ImportError:
        return "pure Python (gate._fastscan was not built: no C compiler at install time; pages read slower)"
    return "C extension (gate._fastscan)"


def version(args: argparse.Namespace) -> int:
    print(f"gate {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
