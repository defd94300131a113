"""The ledger: what gate served and stripped, what fired in browsers, what visitors decided.

On the request path a record is one dict increment, keyed by what the request already knows (the
rewriter's Outcome, the visitor's consent, the raw path). Everything else happens in the flusher, a
background task that every ``flush_interval`` seconds (and when a receipt is queued, and at shutdown)
swaps the counts out and, in a worker thread, turns them into rows: path templates, the reason of each
strip, example pages per finding. Then it updates the Prometheus counters and writes one batch to the
store. A batch that fails to write is kept and retried with the next one; a crash loses at most what
was counted since the last flush.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from starlette.requests import Request

from .. import urls
from ..consent import Consent
from ..context import gate_of
from ..settings import Settings, Site
from ..vendors import Registry
from .store import Batch

if TYPE_CHECKING:
    from ..context import Gate, Visit

log = logging.getLogger("gate.ledger")

OTHER = "(other)"  # where paths go once a flush window has seen MAX_KEYS distinct keys
UNKNOWN_PAGE = "(unknown)"  # CSP and guard reports do not say which page
MAX_KEYS = 20_000
MAX_TIMINGS = 20_000
EXAMPLES = 5  # example pages kept per finding per flush (the store keeps its first five overall)


class PageOutcome(Protocol):
    """What the ledger counts of a rewritten page (gate.rewrite.Outcome has it). A protocol, not an
    import: recording records what the gate decided and never imports the gate (tests/test_layers.py)."""

    @property
    def kept(self) -> Set[str]: ...
    @property
    def stripped(self) -> Set[str]: ...
    @property
    def uncertain(self) -> int: ...
    @property
    def personal_data(self) -> Set[str]: ...


def site_label(site: Site | None) -> str:
    """How a site is named in the store and the report: its host, ``*`` for the default site."""
    return "*" if site is None or site.host is None else site.host


def today() -> int:
    return int(time.time() // 86400)


def day_text(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


# -- the request path --------------------------------------------------------------------------
ConsentKey = tuple[bool, bool, bool, frozenset[str], frozenset[str]]


def consent_key(consent: Consent | None) -> ConsentKey | None:
    if consent is None:
        return None
    accepted = frozenset(p for p, ok in consent.purposes.items() if ok)
    return consent.decided, consent.gpc, consent.opt_out_mode, accepted, consent.vendors_refused


@dataclass
class Counts:
    """What one flush window saw, keyed as cheaply as the request path can key it."""

    pages: dict[tuple, int] = field(default_factory=dict)
    beacons: dict[tuple, int] = field(default_factory=dict)
    decisions: dict[tuple, int] = field(default_factory=dict)
    attempts: dict[tuple, int] = field(default_factory=dict)
    rejections: dict[tuple, int] = field(default_factory=dict)
    upstream_seconds: list[float] = field(default_factory=list)
    rewrite_seconds: list[float] = field(default_factory=list)

    def add(self, table: dict[tuple, int], key: tuple, other: Callable[[], tuple]) -> None:
        if key not in table and len(table) >= MAX_KEYS:
            key = other()  # a flood of distinct paths must not grow memory without bound
        table[key] = table.get(key, 0) + 1


class Ledger:
    def __init__(self) -> None:
        self.counts = Counts()

    def take(self) -> Counts:
        counts, self.counts = self.counts, Counts()
        return counts

    def page(self, site: str, path: str, consent: Consent | None, outcome: PageOutcome) -> None:
        key = (
            site,
            today(),
            path,
            consent_key(consent),
            frozenset(outcome.kept),
            frozenset(outcome.stripped),
            outcome.uncertain,
            frozenset(outcome.personal_data),
        )
        self.counts.add(self.counts.pages, key, lambda: (key[0], key[1], OTHER, *key[3:]))

    def beacon(
        self,
        site: str,
        path: str,
        fired: frozenset[str],
        leaked: frozenset[str],
        undeclared: frozenset[str],
        unattributed: frozenset[str] = frozenset(),
    ) -> None:
        key = (site, today(), path, fired, leaked, undeclared, unattributed)
        self.counts.add(
            self.counts.beacons,
            key,
            lambda: (
                site,
                key[1],
                OTHER,
                fired,
                leaked,
                frozenset({OTHER}) if undeclared else undeclared,
                unattributed,
            ),
        )

    def decision(
        self, site: str, choice: str, method: str, accepted: frozenset[str] | None, refusable: tuple[str, ...]
    ) -> None:
        key = (site, today(), choice, method, accepted, refusable)
        self.counts.add(self.counts.decisions, key, lambda: key)

    def attempt(self, site: str, path: str, subject: str, source: str, declared: bool) -> None:
        key = (site, today(), path, subject, source, declared)
        self.counts.add(self.counts.attempts, key, lambda: (site, key[1], OTHER, OTHER, source, declared))

    def rejected(self, site: str, endpoint: str, reason: str) -> None:
        """A beacon, CSP report or consent post that was not counted (gate.tokens names the reasons)."""
        key = (site, today(), endpoint, reason)
        self.counts.add(self.counts.rejections, key, lambda: key)

    def timing(self, upstream: float | None, rewrite: float | None) -> None:
        c = self.counts
        if upstream is not None and len(c.upstream_seconds) < MAX_TIMINGS:
            c.upstream_seconds.append(upstream)
        if rewrite is not None and len(c.rewrite_seconds) < MAX_TIMINGS:
            c.rewrite_seconds.append(rewrite)


def record_page(request: Request, visit: Visit) -> None:
    """After a rewritten page has streamed: count it (proxy.py calls this; one dict increment)."""
    recorder = gate_of(request).recorder
    if recorder is None or visit.outcome is None:
        return
    recorder.ledger.page(site_label(visit.site.site), request.scope["path"], visit.consent, visit.outcome)


def record_rejection(request: Request, site: Site | None, endpoint: str, reason: str) -> None:
    """A submission to ``endpoint`` (beacon, csp, consent) that was not counted, and why."""
    recorder = gate_of(request).recorder
    if recorder is not None:
        recorder.ledger.rejected(site_label(site), endpoint, reason)


def record_attempt(gate: Gate, site: str, vendor: str, host: str, source: str) -> None:
    """A load the guard stopped or a CSP report announced (gate.csp counts them and calls this through
    its subscription): ``vendor`` "" means a host vendors.toml does not declare. Reports name no page."""
    recorder = gate.recorder
    registry = gate.registries.get(site or None)
    if recorder is None or registry is None:
        return
    label = site or "*"
    if not vendor:
        recorder.ledger.attempt(label, UNKNOWN_PAGE, host, source, False)
        return
    claimed = registry.tags_for_url(urls.URL("https", host, "/"))
    for tag in sorted(t for t in claimed if registry.tags[t].vendor == vendor) or [vendor]:
        recorder.ledger.attempt(label, UNKNOWN_PAGE, tag, source, True)


# -- at flush time ------------------------------------------------------------------------------
_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F-]{8,}|.*\d.*\d.*|.*@.*|.{33,})$")


class PathTemplates:
    """A raw path to its template: the first configured template that matches (``/jobs/{id}``), else
    every segment that looks like an id (digits, hex, two digits or more anywhere as in ``dh-001``, an
    @, 33+ characters) becomes ``{id}``. Query strings never reach here."""

    def __init__(self, templates: Iterable[str]) -> None:
        self.templates = [
            (re.compile("^" + re.sub(r"\\\{[A-Za-z_][A-Za-z0-9_]*\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in templates
        ]
        self._cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        found = self._cache.get(path)
        if found is None:
            found = self._template(path)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[path] = found
        return found

    def _template(self, path: str) -> str:
        if path in (OTHER, UNKNOWN_PAGE):
            return path
        for pattern, template in self.templates:
            if pattern.match(path):
                return template
        segments = path[:512].split("/")[:16]
        return "/".join("{id}" if s and _ID_SEGMENT.match(s) else s for s in segments) or "/"


class Expander:
    """Counts -> Batch, in the flusher's thread."""

    def __init__(self, settings: Settings, registries: dict[str | None, Registry]) -> None:
        self.registries = {site_label(s): registries[s.host] for s in settings.sites}
        self.template = PathTemplates(settings.path_templates)

    def expand(self, counts: Counts) -> Batch:
        batch = Batch()
        examples: dict[tuple[str, str, str], int] = {}  # example pages so far, per finding

        def count(table: dict, key: tuple, n: int) -> None:
            table[key] = table.get(key, 0) + n

        def finding(site: str, day: str, kind: str, subject: str, path: str, n: int) -> None:
            count(batch.findings, (site, day, kind, subject), n)
            key = (site, kind, subject, path)
            if key not in batch.examples and examples.get(key[:3], 0) < EXAMPLES:
                batch.examples[key] = day
                examples[key[:3]] = examples.get(key[:3], 0) + 1

        for (site, day_n, raw, ckey, kept, stripped, uncertain, personal), n in counts.pages.items():
            day, path = day_text(day_n), self.template(raw)
            banner = int(ckey is not None and not ckey[0])
            count(batch.pages, (site, day, path, banner, int(ckey is not None and ckey[1] and not ckey[0])), n)
            for tag in kept:
                count(batch.tags, (site, day, path, tag, "served", ""), n)
            for tag in stripped:
                count(batch.tags, (site, day, path, tag, "stripped", self.reason(site, ckey, tag)), n)
            if uncertain:
                finding(site, day, "uncertain", "", path, uncertain * n)
            for tag in personal:
                finding(site, day, "personal_data", tag, path, n)
        for (site, day_n, raw, fired, leaked, undeclared, unattributed), n in counts.beacons.items():
            day, path = day_text(day_n), self.template(raw)
            count(batch.findings, (site, day, "beacons", ""), n)
            for tag in fired:
                count(batch.tags, (site, day, path, tag, "fired", ""), n)
            for tag in leaked:
                finding(site, day, "leak", tag, path, n)
            for host in undeclared:
                finding(site, day, "undeclared_host", host, path, n)
            for host in unattributed:
                finding(site, day, "unattributed_host", host, path, n)
        for (site, day_n, choice, method, accepted, refusable), n in counts.decisions.items():
            day = day_text(day_n)
            count(batch.decisions, (site, day, choice, method), n)
            if accepted is not None:
                for purpose in refusable:
                    count(batch.purposes, (site, day, purpose, int(purpose in accepted)), n)
        for (site, day_n, endpoint, reason), n in counts.rejections.items():
            count(batch.findings, (site, day_text(day_n), "rejected", f"{endpoint}:{reason}"), n)
        for (site, day_n, raw, subject, source, declared), n in counts.attempts.items():
            day, path = day_text(day_n), self.template(raw)
            if declared:
                count(batch.tags, (site, day, path, subject, "attempted", source), n)
            else:
                finding(site, day, "undeclared_host", subject, path, n)
        return batch

    def reason(self, site: str, ckey: ConsentKey | None, tag_id: str) -> str:
        """Why a tag was stripped: ``vendor:<id>``, ``purpose:<id>[+<id>]``, or ``refused``."""
        registry = self.registries.get(site)
        tag = registry.tags.get(tag_id) if registry is not None else None
        if tag is None or ckey is None or registry is None:
            return "refused"
        decided, gpc, opt_out, accepted, vendors_refused = ckey
        if tag.vendor in vendors_refused:
            return f"vendor:{tag.vendor}"
        consent = Consent(
            "", decided, {p: p in accepted for p in registry.refusable}, vendors_refused, gpc=gpc, opt_out_mode=opt_out
        )
        refused = [p for p in sorted(tag.purposes) if not consent.allows_purpose(p, registry.refusable)]
        return "purpose:" + "+".join(refused) if refused else "refused"
