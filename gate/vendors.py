"""vendors.toml -> frozen Purpose / Vendor / Tag objects and a Registry with compiled matchers.

Everything here is parsed and compiled once at start-up; the request path only calls the Registry's
matching methods. A mistake in the file is a ConfigError naming the file, the key and what was expected.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar
from pathlib import Path

from . import urls
from .errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "vendors.toml"
PACKAGED_PATH = Path(__file__).resolve().parent / "data" / "vendors.toml"
T = TypeVar("T")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}
_URL_TAIL = re.compile(r"(?:\\/|[^\s\"'<>`)\\])*")
_NO_BASE = urls.URL("https", "", "/")
_TAG_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Purpose:
    id: str
    n: int
    ja: str
    en: str
    refusable: bool
    summary_ja: str = ""
    summary_en: str = ""


@dataclass(frozen=True)
class Tag:
    id: str
    vendor: str
    service_ja: str
    service_en: str
    purposes: frozenset[str]
    hosts: tuple[str, ...]
    url_patterns: tuple[re.Pattern[str], ...]
    signatures: tuple[re.Pattern[str], ...]
    personal_data_signatures: tuple[re.Pattern[str], ...]
    cookies: tuple[str, ...]
    globals: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    information_ja: tuple[str, ...] = ()
    information_en: tuple[str, ...] = ()
    recipient_purpose_ja: str = ""
    recipient_purpose_en: str = ""

    def cookie_matches(self, name: str) -> bool:
        return any(name.startswith(c[:-1]) if c.endswith("*") else name == c for c in self.cookies)


@dataclass(frozen=True)
class Vendor:
    id: str
    recipient: str
    contact_ja: str
    contact_en: str
    privacy_url: str
    optout_url: str
    domains: tuple[str, ...]
    tags: tuple[str, ...]


def per_consent(fn: Callable[[Registry, frozenset[str]], T]) -> Callable[[Registry, frozenset[str]], T]:
    """Cache ``fn(registry, allowed)``: what gate derives from a visitor's consent (guard, CSP hosts)
    depends on nothing else, and a site sees only a handful of distinct consents."""
    cache: dict[tuple[int, frozenset[str]], tuple[Registry, T]] = {}
    lock = threading.Lock()

    @functools.wraps(fn)
    def cached(registry: Registry, allowed: frozenset[str]) -> T:
        key = (id(registry), allowed)
        hit = cache.get(key)
        if hit is not None and hit[0] is registry:
            return hit[1]
        value = fn(registry, allowed)
        with lock:
            if len(cache) > 1024:
                cache.clear()
            cache[key] = (registry, value)  # the registry is held, so its id cannot be reused meanwhile
        return value
    return cached


def _host_index(entries: Iterable[tuple[str, str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    """{domain: ((path_prefix, owner), ...)} from ("host[/path]", owner) pairs."""
    index: dict[str, list[tuple[str, str]]] = {}
    for spec, owner in entries:
        host, _, path = spec.partition("/")
        index.setdefault(host.lower(), []).append(("/" + path if path else "", owner))
    return {k: tuple(v) for k, v in index.items()}


def _lookup(index: Mapping[str, tuple[tuple[str, str], ...]], url: urls.URL) -> set[str]:
    found: set[str] = set()
    host = url.host
    while host:
        for prefix, owner in index.get(host, ()):
            if not prefix or url.path.lower().startswith(prefix):
                found.add(owner)
        dot = host.find(".")
        host = host[dot + 1:] if dot >= 0 else ""
    return found


@dataclass(frozen=True)
class Registry:
    purposes: Mapping[str, Purpose]
    vendors: Mapping[str, Vendor]
    tags: Mapping[str, Tag]
    version: str
    _tag_hosts: Mapping[str, tuple[tuple[str, str], ...]] = field(repr=False, default_factory=dict)
    _vendor_domains: Mapping[str, tuple[tuple[str, str], ...]] = field(repr=False, default_factory=dict)
    _personal: tuple[tuple[str | None, re.Pattern[str], str], ...] = field(repr=False, default=())
    _url_cache: dict[str, frozenset[str]] = field(repr=False, default_factory=dict, compare=False)
    _signatures: tuple[tuple[str | None, re.Pattern[str], str], ...] = field(repr=False, default=())
    _domain_words: tuple[str, ...] = field(repr=False, default=())
    _words: tuple[str, ...] = field(repr=False, default=())

    @property
    def refusable(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.purposes.values() if p.refusable)

    # -- matching (the hot path) -------------------------------------------------------------
    def tags_for_url(self, url: urls.URL) -> frozenset[str]:
        """The tags a fetch of ``url`` belongs to; empty when it is no vendor's."""
        if url.scheme not in urls.SPECIAL or not url.host:
            return frozenset()
        key = url.key
        cached = self._url_cache.get(key)
        if cached is not None:
            return cached
        by_host = _lookup(self._tag_hosts, url)
        vendors = _lookup(self._vendor_domains, url)
        result: frozenset[str] = frozenset()
        if by_host or vendors:  # url_patterns only ever name hosts on a vendor's domains
            found = {t.id for t in self.tags.values() if any(p.match(key) for p in t.url_patterns)}
            result = frozenset(found or by_host or {t for v in vendors for t in self.vendors[v].tags})
        if len(self._url_cache) >= 4096:
            self._url_cache.clear()
        self._url_cache[key] = result
        return result

    def tags_in_text(self, text: str) -> frozenset[str]:
        """Tags whose signature, or a URL on a vendor host, appears in script or attribute text."""
        lowered = _lower(text)
        if not any(w in lowered for w in self._words):
            return frozenset()  # the common case: a first-party script naming no vendor
        found = _anchored_matches(self._signatures, text, lowered)
        for domain in self._domain_words:
            i = lowered.find(domain)
            while i >= 0:
                end = i + len(domain)
                if not (end < len(lowered) and (lowered[end].isalnum() or lowered[end] == "-")):
                    start = i
                    while start > 0 and (lowered[start - 1].isalnum() or lowered[start - 1] in ".-"):
                        start -= 1
                    m = _URL_TAIL.match(text, end)
                    url = urls.parse("//" + text[start:m.end()].replace("\\/", "/"), _NO_BASE)
                    if url is not None:
                        found |= self.tags_for_url(url)
                i = lowered.find(domain, end)
        return frozenset(found)

    def sends_personal_data(self, text: str) -> bool:
        return bool(self._personal) and bool(_anchored_matches(self._personal, text, _lower(text), first=True))

    # -- per site ----------------------------------------------------------------------------
    def carried(self, vendors: Iterable[str] | None, tags: Iterable[str] | None) -> frozenset[str]:
        """The tags a site carries: its vendors' tags (every vendor when None), narrowed by ``tags``.
        The banner, the notice and the gate all read it from here, so they cannot disagree."""
        vendor_ids = self.vendors if vendors is None else [v for v in vendors if v in self.vendors]
        found = {t for v in vendor_ids for t in self.vendors[v].tags}
        return frozenset(found if tags is None else found & set(tags))

    def with_tag_purposes(self, overrides: Mapping[str, Iterable[str]]) -> Registry:
        """A copy where some tags serve other purposes (a site's GTM container, say)."""
        if not overrides:
            return self
        tags = dict(self.tags)
        for tag_id, purposes in overrides.items():
            tags[tag_id] = replace(tags[tag_id], purposes=frozenset(purposes))
        return build(self.purposes, self.vendors, tags, explicit_version=None)


def _compile(patterns: Iterable[str], where: str, file: str) -> tuple[re.Pattern[str], ...]:
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p, re.IGNORECASE))
        except re.error as e:
            raise ConfigError(file, where, f"bad regular expression {p!r}: {e}") from None
    return tuple(out)


def _version(purposes: Mapping[str, Purpose], vendors: Mapping[str, Vendor], tags: Mapping[str, Tag]) -> str:
    shape = {
        "purposes": sorted((p.id, p.refusable) for p in purposes.values()),
        "vendors": sorted((v.id, v.recipient) for v in vendors.values()),
        "tags": sorted((t.id, sorted(t.purposes)) for t in tags.values()),
    }
    return hashlib.sha256(json.dumps(shape, ensure_ascii=False).encode()).hexdigest()[:12]


def build(purposes: Mapping[str, Purpose], vendors: Mapping[str, Vendor], tags: Mapping[str, Tag],
          explicit_version: str | None) -> Registry:
    domains = sorted({d.split("/")[0] for v in vendors.values() for d in v.domains}
                     | {h.split("/")[0] for t in tags.values() for h in t.hosts}, key=len, reverse=True)
    signatures = tuple((leading_word(p.pattern), p, t.id) for t in tags.values() for p in t.signatures)
    personal = tuple((leading_word(p.pattern), p, t.id) for t in tags.values() for p in t.personal_data_signatures)
    return Registry(
        purposes=dict(sorted(purposes.items(), key=lambda kv: kv[1].n)),
        vendors=dict(vendors),
        tags=dict(tags),
        version=explicit_version or _version(purposes, vendors, tags),
        _tag_hosts=_host_index((h, t.id) for t in tags.values() for h in t.hosts),
        _vendor_domains=_host_index((d, v.id) for v in vendors.values() for d in v.domains),
        _personal=personal,
        _signatures=signatures,
        _domain_words=tuple(domains),
        _words=_minimal_words({w for w, _, _ in signatures if w} | set(domains))
        if all(w for w, _, _ in signatures) else ("",),
    )


def _lower(text: str) -> str:
    """Lower case, index for index with ``text``, to find the (ASCII) leading words in.

    str.lower() only ever lengthens a string (U+0130 becomes two characters); when the length is
    unchanged every index still lines up. Otherwise each ASCII letter is lowered alone (translate
    measured about 15 times slower than lower(): 0.06 ms on an 862-character script with Japanese
    comments)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _anchored_matches(entries: tuple[tuple[str | None, re.Pattern[str], str], ...], text: str, lowered: str,
                      first: bool = False) -> set[str]:
    """The labels of the (leading word, pattern, label) entries whose pattern matches ``text``.

    Each pattern opens with a word it cannot match without: the regex is only tried where that word
    stands in ``lowered`` (Python's engine is slow on case-insensitive scans of long scripts: a search
    of one alternation over a 2 KB script measured 0.1 ms). ``first``: stop at the first label found."""
    found: set[str] = set()
    for word, pattern, label in entries:
        if label in found:
            continue
        if word is None:
            hit = pattern.search(text) is not None
        else:
            hit, i = False, lowered.find(word)
            while i >= 0 and not hit:
                hit = pattern.match(text, i) is not None
                i = lowered.find(word, i + 1)
        if hit:
            found.add(label)
            if first:
                break
    return found


def _minimal_words(words: set[str]) -> tuple[str, ...]:
    """Drop every word that contains a shorter one: finding the shorter one is enough to look closer."""
    keep = [w for w in words if not any(o != w and o in w for o in words)]
    return tuple(sorted(keep, key=len))


def leading_word(pattern: str) -> str | None:
    """The plain text every match of ``pattern`` starts with (lower-case, after an optional \\b), or
    None when it starts otherwise; signatures are matched only where that word stands."""
    i = 2 if pattern.startswith("\\b") else 0
    word = ""
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            ch, step = pattern[i + 1], 2
        elif c.isalnum() or c in "_-/:;=,#@%!<>~`'\"&":
            ch, step = c, 1
        else:
            break
        if i + step < len(pattern) and pattern[i + step] in "?*{":
            break  # optional: not part of every match
        word += ch
        i += step
    return word.lower() if len(word) >= 3 else None


# -- loading ---------------------------------------------------------------------------------
def _str(d: Mapping, key: str, where: str, file: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(file, f"{where}.{key}", f"expected a string, got {type(v).__name__ if v is not None else 'nothing'}")
    return v


def _strs(d: Mapping, key: str, where: str, file: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(file, f"{where}.{key}", "expected a list of strings")
    return tuple(v)


def load(path: str | Path | None = None) -> Registry:
    """Read and validate vendors.toml (the packaged copy when ``path`` is None)."""
    p = Path(path) if path else (DEFAULT_PATH if DEFAULT_PATH.exists() else PACKAGED_PATH)
    file = p.name if path is None else str(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(file, "", "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(file, "", f"not valid TOML: {e}") from None
    return parse(raw, file)


def parse(raw: Mapping, file: str = "vendors.toml") -> Registry:
    purposes: dict[str, Purpose] = {}
    praw = raw.get("purposes")
    if not isinstance(praw, dict) or not praw:
        raise ConfigError(file, "purposes", "expected a table of purposes")
    for pid, p in praw.items():
        where = f"purposes.{pid}"
        if not _ID.match(pid) or not isinstance(p, dict):
            raise ConfigError(file, where, "expected a lower-case id and a table")
        refusable = p.get("refusable", True)
        if not isinstance(refusable, bool):
            raise ConfigError(file, f"{where}.refusable", "expected true or false")
        n = p.get("n", len(purposes) + 1)
        if not isinstance(n, int):
            raise ConfigError(file, f"{where}.n", "expected an integer")
        purposes[pid] = Purpose(pid, n, _str(p, "ja", where, file), _str(p, "en", where, file), refusable,
                                _str(p, "summary_ja", where, file, ""), _str(p, "summary_en", where, file, ""))
    known = ", ".join(sorted(purposes))
    vendors: dict[str, Vendor] = {}
    tags: dict[str, Tag] = {}
    vraw = raw.get("vendors")
    if not isinstance(vraw, dict) or not vraw:
        raise ConfigError(file, "vendors", "expected a table of vendors")
    for vid, v in vraw.items():
        where = f"vendors.{vid}"
        if not _ID.match(vid) or not isinstance(v, dict):
            raise ConfigError(file, where, "expected a lower-case id and a table")
        tag_ids = []
        traw = v.get("tags", [])
        if not isinstance(traw, list):
            raise ConfigError(file, f"{where}.tags", "expected an array of tables ([[vendors.X.tags]])")
        for t in traw:
            tid = t.get("id") if isinstance(t, dict) else None
            twhere = f"vendor '{vid}', tag '{tid}'"
            if not isinstance(tid, str) or not _TAG_ID.match(tid) or not tid.startswith(vid + "."):
                raise ConfigError(file, twhere, f"expected id '{vid}.<name>'")
            if tid in tags:
                raise ConfigError(file, twhere, "duplicate tag id")
            tp = _strs(t, "purposes", twhere, file)
            if not tp:
                raise ConfigError(file, f"{twhere}: purposes", f"expected at least one purpose (known: {known})")
            for purpose in tp:
                if purpose not in purposes:
                    raise ConfigError(file, twhere, f"unknown purpose '{purpose}' (known: {known})")
            tags[tid] = Tag(
                id=tid, vendor=vid,
                service_ja=_str(t, "service_ja", twhere, file), service_en=_str(t, "service_en", twhere, file),
                purposes=frozenset(tp),
                hosts=tuple(h.lower() for h in _strs(t, "hosts", twhere, file)),
                url_patterns=_compile(_strs(t, "url_patterns", twhere, file), f"{twhere}: url_patterns", file),
                signatures=_compile(_strs(t, "signatures", twhere, file), f"{twhere}: signatures", file),
                personal_data_signatures=_compile(_strs(t, "personal_data_signatures", twhere, file),
                                                  f"{twhere}: personal_data_signatures", file),
                cookies=_strs(t, "cookies", twhere, file),
                globals=_strs(t, "globals", twhere, file), queues=_strs(t, "queues", twhere, file),
                objects=_strs(t, "objects", twhere, file),
                information_ja=_strs(t, "information_ja", twhere, file),
                information_en=_strs(t, "information_en", twhere, file),
                recipient_purpose_ja=_str(t, "recipient_purpose_ja", twhere, file, ""),
                recipient_purpose_en=_str(t, "recipient_purpose_en", twhere, file, ""),
            )
            tag_ids.append(tid)
        vendors[vid] = Vendor(
            id=vid, recipient=_str(v, "recipient", where, file),
            contact_ja=_str(v, "contact_ja", where, file, ""), contact_en=_str(v, "contact_en", where, file, ""),
            privacy_url=_str(v, "privacy_url", where, file, ""), optout_url=_str(v, "optout_url", where, file, ""),
            domains=tuple(d.lower() for d in _strs(v, "domains", where, file)), tags=tuple(tag_ids),
        )
    version = raw.get("policy_version")
    if version is not None and not isinstance(version, str):
        raise ConfigError(file, "policy_version", "expected a string")
    return build(purposes, vendors, tags, version)
