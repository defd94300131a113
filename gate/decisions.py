"""The verdicts a page reader remembers, one set per registry: a site sends the same tags on every
page, so after its first page most tags are a dictionary lookup.

Held beside the registry (``of(registry)``), never inside it: the registry is what vendors.toml says,
this is what gate.rewrite learnt from reading pages with it. Bounded (Memo: what was not used
for a while goes first), so a site whose pages each bring new tags never grows it.

A verdict is remembered under the element's bytes and everything else it read (the rewriter's
context), and the base URL only as far as a URL in it was resolved against the base: not at all for
an absolute https:// URL, its scheme for //host, its origin for /path, all of it otherwise
(urls.base_read). Under the bytes alone is then a _ByBase note saying how much of the base to add.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

from . import htmlstream as hs
from . import urls
from .matcher import Memo
from .vendors import Registry
from .verdict import NOTHING, Verdict

ENTRIES = 1024  # verdicts, and attribute parses, at most (each)
CACHED_TAG_MAX = 2048  # bytes: longer tags are judged every time, never remembered
# Whole elements longer than CACHED_TAG_MAX (an inline <style> of a page's critical CSS, a long inline
# script, JSON-LD) up to LONG_ELEMENT_MAX are remembered apart, LONG_ENTRIES of them at most: each is
# held twice (key and verdict), so these bound what they can take (2 MiB a registry). Remembering the
# bench page's 4.7 KB <style> made its rewrite 9 % faster (bench/abrewrite.py).
LONG_ELEMENT_MAX = 32 * 1024
LONG_ENTRIES = 32


class _ByBase:
    """In place of a verdict: look again with this much of the base URL (a urls.READS_* level)."""

    __slots__ = ("read",)

    def __init__(self, read: int) -> None:
        self.read = read


_BY_BASE = {read: _ByBase(read) for read in (urls.READS_SCHEME, urls.READS_ORIGIN, urls.READS_ALL)}


def _with_base(key: Hashable, read: int, base: urls.URL) -> Hashable:
    if read == urls.READS_SCHEME:
        return key, base.scheme
    if read == urls.READS_ORIGIN:
        return key, base.scheme, base.host
    return key, base


class Decisions:
    """Verdicts on tags and elements, and attribute parses, remembered for one registry. One worker
    thread uses it at a time (the event loop)."""

    __slots__ = ("verdicts", "attrs", "long")

    def __init__(self, entries: int = ENTRIES, long_entries: int = LONG_ENTRIES) -> None:
        self.verdicts: Memo[Verdict | _ByBase] = Memo(entries)
        self.attrs: Memo[tuple[hs.Attr, ...]] = Memo(entries)
        # Elements over CACHED_TAG_MAX bytes, up to LONG_ELEMENT_MAX: remembered here, fewer of them.
        self.long: Decisions | None = Decisions(long_entries, 0) if long_entries else None

    def attributes(self, raw: bytes) -> tuple[hs.Attr, ...]:
        """hs.parse_attrs(raw), remembered for attribute bytes up to CACHED_TAG_MAX."""
        if not raw:
            return ()
        attrs = self.attrs.get(raw)
        if attrs is None:
            attrs = hs.parse_attrs(raw)
            if len(raw) <= CACHED_TAG_MAX:
                self.attrs.put(raw, attrs)
        return attrs

    def recall(self, key: Hashable, base: urls.URL) -> Verdict | None:
        """The verdict remembered under ``key`` (and as much of ``base`` as it read), or None."""
        hit = self.verdicts.get(key)
        if hit is None or not isinstance(hit, _ByBase):
            return hit
        hit = self.verdicts.get(_with_base(key, hit.read, base))
        assert not isinstance(hit, _ByBase)  # only verdicts are held under a key with its base
        return hit

    def base_noted(self, key: Hashable) -> int:
        """How much of the base a verdict once remembered under ``key`` read (a urls.READS_* level):
        asked before judging again after recall() found none, for what remember() returns."""
        hit = self.verdicts.get(key)
        return hit.read if isinstance(hit, _ByBase) else urls.READS_NOTHING

    def remember(self, key: Hashable, base: urls.URL, verdict: Verdict, read: int) -> Verdict:
        """Remember ``verdict``, judged after recall(key, base) found none (``read``: base_noted(key)
        before judging). Returns what the caller adds to its own outcome: the verdict, noting that
        the base was read when the note said so."""
        if verdict.outcome is not NOTHING and verdict.outcome.empty:
            verdict = verdict._replace(outcome=NOTHING)  # one shared empty outcome: the caller skips it
        memo = self.verdicts
        if verdict.base_read:
            memo.put(key, _BY_BASE[verdict.base_read])
            memo.put(_with_base(key, verdict.base_read, base), verdict)
        else:
            memo.put(key, verdict)
        return verdict if verdict.base_read >= read else verdict._replace(base_read=read)

    def decide(self, key: Hashable, base: urls.URL, judge: Callable[[], Verdict]) -> Verdict:
        """The verdict remembered under ``key`` (and as much of ``base`` as it read), else ``judge()``,
        remembered. The verdict's outcome is what the caller adds to its own, on a hit as on a miss."""
        hit = self.recall(key, base)
        if hit is not None:
            return hit
        read = self.base_noted(key)
        return self.remember(key, base, judge(), read)

    def forget(self) -> None:
        self.verdicts.clear()
        self.attrs.clear()
        if self.long is not None:
            self.long.forget()

    def __len__(self) -> int:
        return len(self.verdicts)


_held: dict[int, Decisions] = {}


def of(registry: Registry) -> Decisions:
    """The decisions remembered for ``registry`` (created on first use; dropped with the registry)."""
    decisions = _held.get(id(registry))
    if decisions is None:
        decisions = _held[id(registry)] = Decisions()
        weakref.finalize(registry, _held.pop, id(registry), None)
    return decisions


def forget(registry: Registry) -> None:
    """Start cold: forget every verdict remembered for ``registry`` and every URL and script judgment
    its matcher remembers (the benchmarks' first-page runs; a reloaded vendors.toml is a new registry
    and starts cold anyway)."""
    of(registry).forget()
    registry.matcher.forget()
