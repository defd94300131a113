"""`gate report` and `gate receipts`: the store, read from a terminal (no server needed).

    gate report [--site HOST] [--since 7d|YYYY-MM-DD] [--until YYYY-MM-DD] [--format table|csv|json]
    gate receipts export --since 30d|YYYY-MM-DD[THH:MM:SS] [--until …] [--format csv|jsonl]
    gate receipts show CONSENT_ID

Both read the store that gate.toml (``--config``), GATE_STORE or ``--store`` names, as `gate serve` would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import settings, vendors
from .errors import ConfigError
from .recording.store import OFF, Store, StoreError, is_postgres, open_store

RECEIPT_FORMATS = ("csv", "jsonl")  # receipts.FORMATS; gate.receipts (starlette) is imported only when used


def add_parsers(commands: Any, files: Callable[[argparse.ArgumentParser], None]) -> None:
    def store_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", metavar="PATH|URL", help="the store (env GATE_STORE; default as gate serve)")
        files(p)

    rep = commands.add_parser("report", help="print the report's tables for one site (or --format csv|json)")
    rep.add_argument("--site", metavar="HOST", help="the site's host, * for the default site (default: the only one)")
    rep.add_argument("--since", default="7d", metavar="WHEN", help="YYYY-MM-DD or Nd, the last N days (default 7d)")
    rep.add_argument("--until", metavar="DAY", help="YYYY-MM-DD (default: today, UTC)")
    rep.add_argument("--format", choices=("table", "csv", "json"), default="table")
    store_flag(rep)
    rec = commands.add_parser("receipts", help="proof of consent: export receipts, or show one consent's")
    actions = rec.add_subparsers(dest="receipts_action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="every receipt in a time range, as CSV or JSON lines")
    export.add_argument("--since", required=True, metavar="WHEN", help="YYYY-MM-DD[THH:MM[:SS]] (UTC) or Nd")
    export.add_argument("--until", metavar="WHEN", help="same forms (default: now)")
    export.add_argument("--format", choices=RECEIPT_FORMATS, default="jsonl")
    store_flag(export)
    show = actions.add_parser("show", help="the receipts of one consent id (as shown to the visitor)")
    show.add_argument("consent_id")
    store_flag(show)


SHOW_OPTIONS = ("-h", "--help", "--store", "--config", "--vendors")


def consent_id_last(argv: list[str]) -> list[str]:
    """A consent id is URL-safe base64 and may begin with "-" (1 in 64): `gate receipts show -Xy…` would
    be read as an unknown option. Such an id (a "-" word that is none of show's options) moves after
    "--", where argparse reads it as the id whatever it starts with."""
    if argv[:2] != ["receipts", "show"] or "--" in argv:
        return argv
    rest, ids, i = list(argv[2:]), [], 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("-") and word.split("=", 1)[0] not in SHOW_OPTIONS:
            ids.append(rest.pop(i))
            continue
        i += 2 if word in SHOW_OPTIONS[2:] else 1  # an option's value is never an id
    return argv[:2] + rest + (["--", *ids] if ids else [])


def _settings(args: argparse.Namespace) -> settings.Settings:
    env = dict(os.environ)
    if not env.get("GATE_SECRET_KEY"):  # reading the store needs no signing key
        env["GATE_SECRET_KEY"] = "unused-for-reading-the-store"
    flags = {"config": args.config, "vendors": args.vendors, "store": args.store}
    return settings.load(flags, env)


def _open(conf: settings.Settings) -> Store:
    if conf.store == OFF:
        raise ConfigError("store", "", 'recording is off (store = "off"): there is nothing to read')
    if not is_postgres(conf.store) and not Path(conf.store).exists():
        raise ConfigError("store", "", f"no store at {conf.store} (has gate run with recording on here?)")
    return open_store(conf.store)


def report_command(args: argparse.Namespace) -> int:
    from .recording import report
    from .recording.ledger import site_label

    conf = _settings(args)
    sites = {site_label(s): s for s in conf.sites}
    label = args.site or (next(iter(sites)) if len(sites) == 1 else "*")
    if label not in sites:
        raise ConfigError("--site", "", f"expected one of {', '.join(sites)}, got {label!r}")
    try:
        first, last = report.day_range(args.since, args.until)
    except ValueError as e:
        what, _, message = str(e).partition(": ")
        raise ConfigError(f"--{what}", "", message) from None
    registry = vendors.load(conf.vendors_path).with_tag_purposes(sites[label].tag_purposes)
    store = _open(conf)
    try:
        raw = report.collect(store, label, first, last)
    except StoreError as e:
        print(f"gate: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.format == "csv":
        sys.stdout.write(report.to_csv(raw, label))
        return 0
    data = report.summarize(
        raw, label, first, last, registry, registry.carried(sites[label].vendors, sites[label].tags)
    )
    if args.format == "json":
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(report.text_report(data))
    return 0


def parse_time(text: str, what: str) -> int:
    """Unix seconds from ``Nd`` (N days ago), a date (its start, UTC) or an ISO date and time (UTC unless
    it says otherwise)."""
    now = dt.datetime.now(dt.UTC)
    text = text.strip()
    if text.endswith("d") and text[:-1].isdigit():
        return int((now - dt.timedelta(days=int(text[:-1]))).timestamp())
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{what}", "", f"expected 2025-04-01, 2025-04-01T09:00 or 30d, got {text!r}") from None
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())


def receipts_command(args: argparse.Namespace) -> int:
    from .recording import receipts

    conf = _settings(args)
    if args.receipts_action == "export":
        since = parse_time(args.since, "since")
        until = parse_time(args.until, "until") if args.until else 2**62
    store = _open(conf)
    try:
        _store_journaled(store, conf.store)
        if args.receipts_action == "export":
            receipts.write(store.receipts_between(since, until), sys.stdout, args.format)
            return 0
        found = store.receipts_for(args.consent_id)
        if not found:
            print(f"gate: no receipt for consent id {args.consent_id!r}", file=sys.stderr)
            return 1
        receipts.write(found, sys.stdout, "jsonl")
        return 0
    except StoreError as e:
        print(f"gate: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _store_journaled(store: Store, where: str) -> None:
    """Receipts still in a journal no live gate holds (a stop whose last flush did not finish) are
    written first, as the next `gate serve` would: an export must not miss an acknowledged receipt."""
    from .recording import journal
    from .recording.recorder import spool_dir
    from .recording.store import Batch

    receipts, files = journal.replay(spool_dir(where))
    if receipts:
        store.write(Batch(receipts=receipts))
    journal.delete(files)


COMMANDS = {"report": report_command, "receipts": receipts_command}
