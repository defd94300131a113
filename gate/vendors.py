"""vendors.toml -> frozen Purpose / Vendor / Tag objects and a Registry: the file's schema, its loading
and its checks. The matching engine the Registry answers with is gate.matcher.

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
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from . import urls
from .errors import ConfigError
from .matcher import Judgment, Matcher, Memo

__all__ = ["ConfigError", "Judgment", "Memo", "Purpose", "Registry", "Tag", "Vendor", "build", "load", "parse"]

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "vendors.toml"
PACKAGED_PATH = Path(__file__).resolve().parent / "data" / "vendors.toml"
T = TypeVar("T")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


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
    cookies: tuple[str, ...]
    calls: tuple[str, ...] = ()  # globals the tag's code defines, as a script names them (fbq, Adjust)
    call_ids: tuple[re.Pattern[str], ...] = ()  # strings in a call that say it is this tag's (G-…)
    personal_data_keys: tuple[str, ...] = ()  # "key" or "discriminator/key" (setEmail/email)
    globals: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    information_ja: tuple[str, ...] = ()
    information_en: tuple[str, ...] = ()
    recipient_purpose_ja: str = ""
    recipient_purpose_en: str = ""
    reads_forms: bool = False  # can read what is typed into a form (enhanced conversions, advanced matching)
    storage: tuple[str, ...] = ()  # "localStorage:cto_bundle", "indexedDB:adjust-sdk": kept outside cookies
    optout_url: str = ""  # the tag's own opt-out page; "" = its vendor's
    location: bool = False  # sends the visitor's location

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
    country: str = ""  # ISO 3166 code of where the recipient is
    country_ja: str = ""
    country_en: str = ""
    regime_ja: str = ""  # APPI art. 28: that country's personal-information regime
    regime_en: str = ""
    measures_ja: str = ""  # ... and the recipient's measures
    measures_en: str = ""
    carried_by_default: bool = True  # a site that names no vendors carries this one

    @property
    def abroad(self) -> bool:
        return self.country not in ("", "JP")


class PerRegistry(Generic[T]):
    """Values worked out from a registry and a small key (a consent, a set of allowed tags), remembered:
    a site sees only a handful of distinct consents, and the values are asked for on every page. Bounded
    (emptied when full); an entry holds its registry, so the registry's id cannot be reused meanwhile."""

    def __init__(self, size: int = 1024) -> None:
        self._values: dict[tuple[int, Hashable], tuple[Registry, T]] = {}
        self._lock = threading.Lock()
        self.size = size

    def get(self, registry: Registry, key: Hashable, work_out: Callable[[], T]) -> T:
        hit = self._values.get((id(registry), key))
        if hit is not None and hit[0] is registry:
            return hit[1]
        value = work_out()
        with self._lock:
            if len(self._values) >= self.size:
                self._values.clear()
            self._values[(id(registry), key)] = (registry, value)
        return value


def per_consent(fn: Callable[[Registry, frozenset[str]], T]) -> Callable[[Registry, frozenset[str]], T]:
    """Cache ``fn(registry, allowed)``: what gate derives from a visitor's consent (guard, CSP hosts)
    depends on nothing else (PerRegistry)."""
    remembered: PerRegistry[T] = PerRegistry()

    @functools.wraps(fn)
    def cached(registry: Registry, allowed: frozenset[str]) -> T:
        return remembered.get(registry, allowed, lambda: fn(registry, allowed))

    return cached


@dataclass(frozen=True)
class Registry:
    purposes: Mapping[str, Purpose]
    vendors: Mapping[str, Vendor]
    tags: Mapping[str, Tag]
    version: str
    matcher: Matcher = field(repr=False, compare=False)  # built from tags and vendors by build()
    # Per tag, a short hash of what a consent to it covers (see tag_fingerprint); a site's registry
    # (for_site) keeps only the tags the site carries, so its keys are the carried tags.
    fingerprints: Mapping[str, str] = field(repr=False, default_factory=dict)
    declared_version: str = ""  # vendors.toml's policy_version, when set
    # A site's third-party hosts that are no recipient (its CDN, fonts, video or map embeds: gate.toml's
    # allow_hosts and csp_hosts), and whether loads to any other undeclared host are stripped.
    own_hosts: tuple[str, ...] = ()
    strip_undeclared: bool = False
    _declared_hosts: frozenset[str] = field(repr=False, default=frozenset())

    @functools.cached_property
    def refusable(self) -> tuple[str, ...]:
        """The purposes a visitor may refuse (read for every page: worked out once per registry)."""
        return tuple(p.id for p in self.purposes.values() if p.refusable)

    # -- matching (the hot path: gate.matcher) ------------------------------------------------------
    def tags_for_url(self, url: urls.URL) -> frozenset[str]:
        """The tags a fetch of ``url`` belongs to; empty when it is no vendor's."""
        return self.matcher.tags_for_url(url)

    def judge_script(self, content: bytes, encoding: str, module: bool = False) -> Judgment:
        """Matcher.judge_script: an inline script's bytes, remembered."""
        return self.matcher.judge_script(content, encoding, module)

    def judge_text(self, text: str, module: bool = False) -> Judgment:
        """Matcher.judge_text: which tags a script is, and whether it sends them personal data."""
        return self.matcher.judge_text(text, module)

    def word_positions(self, text: str) -> dict[str, list[int]]:
        return self.matcher.word_positions(text)

    def tags_in_text(self, text: str) -> frozenset[str]:
        """Tags a script or attribute text is (see Matcher.judge_text)."""
        return self.matcher.judge_text(text).tags

    def sends_personal_data(self, text: str) -> bool:
        return self.matcher.judge_text(text).sends

    # -- per site ----------------------------------------------------------------------------
    def carried(self, vendors: Iterable[str] | None, tags: Iterable[str] | None) -> frozenset[str]:
        """The tags a site carries: its vendors' tags (every vendor carried by default when None),
        narrowed by ``tags``.
        The banner, the notice and the gate all read it from here, so they cannot disagree."""
        vendor_ids = (
            [v.id for v in self.vendors.values() if v.carried_by_default]
            if vendors is None
            else [v for v in vendors if v in self.vendors]
        )
        found = {t for v in vendor_ids for t in self.vendors[v].tags}
        return frozenset(found if tags is None else found & set(tags))

    def with_tag_purposes(self, overrides: Mapping[str, Iterable[str]]) -> Registry:
        """A copy where some tags serve other purposes (a site's GTM container, say)."""
        if not overrides:
            return self
        tags = dict(self.tags)
        for tag_id, purposes in overrides.items():
            tags[tag_id] = replace(tags[tag_id], purposes=frozenset(purposes))
        return build(self.purposes, self.vendors, tags, explicit_version=self.declared_version or None)

    def with_site_words(
        self,
        information_ja: Mapping[str, Iterable[str]],
        information_en: Mapping[str, Iterable[str]],
        cookies: Mapping[str, Iterable[str]],
    ) -> Registry:
        """A copy where a site adds to some tags' "information sent" and cookies (so their fingerprints,
        and what a consent to them covers, change with it)."""
        if not (information_ja or information_en or cookies):
            return self
        tags = dict(self.tags)
        for tag_id in {*information_ja, *information_en, *cookies}:
            tag = tags[tag_id]
            tags[tag_id] = replace(
                tag,
                information_ja=(*tag.information_ja, *information_ja.get(tag_id, ())),
                information_en=(*tag.information_en, *information_en.get(tag_id, ())),
                cookies=(*tag.cookies, *cookies.get(tag_id, ())),
            )
        return build(self.purposes, self.vendors, tags, explicit_version=self.declared_version or None)

    def with_undeclared(self, own_hosts: Iterable[str], strip: bool) -> Registry:
        """A copy that knows the site's own third-party hosts and whether undeclared ones are stripped."""
        own = tuple(h.lower().removeprefix("*.") for h in own_hosts)
        # Every host a vendor declares, without its path (www.google.com for www.google.com/pagead/): the
        # guard can only match hosts, and both must agree on what is undeclared.
        vendor_hosts = {h.split("/")[0] for t in self.tags.values() for h in t.hosts}
        vendor_hosts |= {d.split("/")[0] for v in self.vendors.values() for d in v.domains}
        return replace(self, own_hosts=own, strip_undeclared=strip, _declared_hosts=frozenset(vendor_hosts) | set(own))

    def is_undeclared(self, url: urls.URL, page_host: str) -> bool:
        """``url`` reaches a third party that is neither a vendor's host nor one of the site's own hosts
        (by label: "example-cdn.jp" covers "img.example-cdn.jp")."""
        host = url.host.rstrip(".")
        if not host or url.scheme not in ("http", "https", "ws", "wss"):
            return False
        if page_host and (host == page_host or host.endswith("." + page_host)):
            return False
        declared = self._declared_hosts
        while host:
            if host in declared:
                return False
            dot = host.find(".")
            host = host[dot + 1 :] if dot >= 0 else ""
        return True

    def for_site(self, carried: Iterable[str], words: str) -> Registry:
        """This registry as one site sees it: ``version`` hashes what the site carries (each tag's
        fingerprint) and what it says (``words``: a digest of the banner's and notice's wording), so a
        consent is given under a version that changes exactly when the site's own tags or words do."""
        prints = {t: self.fingerprints[t] for t in sorted(carried) if t in self.fingerprints}
        shape = {"tags": prints, "words": words, "declared": self.declared_version}
        version = hashlib.sha256(json.dumps(shape, ensure_ascii=False).encode()).hexdigest()[:12]
        return replace(self, version=version, fingerprints=prints)

    @property
    def carried_tags(self) -> frozenset[str]:
        """The tags a consent under this registry covers: a site's carried tags (every tag, unsited)."""
        return frozenset(self.fingerprints)


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


def tag_fingerprint(tag: Tag, vendor: Vendor, purposes: Mapping[str, Purpose], declared: str = "") -> str:
    """What a consent to ``tag`` was given to: its recipient, what it sends and the purposes it serves,
    in the words shown. When any of it changes, a consent given before no longer covers the tag (its
    service name, contact and links may change without asking again: they do not widen what is sent)."""
    shape = [
        tag.id,
        vendor.recipient,
        sorted(tag.purposes),
        list(tag.information_ja),
        list(tag.information_en),
        [(p.id, p.ja, p.en, p.summary_ja, p.summary_en) for p in purposes.values() if p.id in tag.purposes],
        declared,
    ]
    return hashlib.sha256(json.dumps(shape, ensure_ascii=False).encode()).hexdigest()[:8]


def build(
    purposes: Mapping[str, Purpose],
    vendors: Mapping[str, Vendor],
    tags: Mapping[str, Tag],
    explicit_version: str | None,
) -> Registry:
    return Registry(
        purposes=dict(sorted(purposes.items(), key=lambda kv: kv[1].n)),
        vendors=dict(vendors),
        tags=dict(tags),
        version=explicit_version or _version(purposes, vendors, tags),
        matcher=Matcher(tags, vendors),
        fingerprints={
            t.id: tag_fingerprint(t, vendors[t.vendor], purposes, explicit_version or "") for t in tags.values()
        },
        declared_version=explicit_version or "",
    )


def _calls_of(t: Mapping[str, Any], where: str, file: str) -> tuple[str, ...]:
    names = _strs(t, "calls", where, file)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_$][\w$]{2,}", name):
            raise ConfigError(
                file, f"{where}: calls", f"expected a JavaScript global of 3 or more characters, got {name!r}"
            )
    return names


# -- loading ---------------------------------------------------------------------------------
def _str(d: Mapping[str, Any], key: str, where: str, file: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(
            file, f"{where}.{key}", f"expected a string, got {type(v).__name__ if v is not None else 'nothing'}"
        )
    return v


def _strs(d: Mapping[str, Any], key: str, where: str, file: str) -> tuple[str, ...]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(file, f"{where}.{key}", "expected a list of strings")
    return tuple(v)


_STORAGE = re.compile(r"^(localStorage|sessionStorage|indexedDB):[A-Za-z0-9_.$-]+\*?$")


def _storage(entries: tuple[str, ...], where: str, file: str) -> tuple[str, ...]:
    for e in entries:
        if not _STORAGE.match(e):
            raise ConfigError(
                file,
                f"{where}: storage",
                f'expected "localStorage:<key>", "sessionStorage:<key>" or "indexedDB:<database>", got {e!r}',
            )
    return entries


def _bool(d: Mapping[str, Any], key: str, where: str, file: str, default: bool = False) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise ConfigError(file, f"{where}.{key}", "expected true or false")
    return v


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


def parse(raw: Mapping[str, Any], file: str = "vendors.toml") -> Registry:
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
        purposes[pid] = Purpose(
            pid,
            n,
            _str(p, "ja", where, file),
            _str(p, "en", where, file),
            refusable,
            _str(p, "summary_ja", where, file, ""),
            _str(p, "summary_en", where, file, ""),
        )
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
                id=tid,
                vendor=vid,
                service_ja=_str(t, "service_ja", twhere, file),
                service_en=_str(t, "service_en", twhere, file),
                purposes=frozenset(tp),
                hosts=tuple(h.lower() for h in _strs(t, "hosts", twhere, file)),
                url_patterns=_compile(_strs(t, "url_patterns", twhere, file), f"{twhere}: url_patterns", file),
                signatures=_compile(_strs(t, "signatures", twhere, file), f"{twhere}: signatures", file),
                cookies=_strs(t, "cookies", twhere, file),
                calls=_calls_of(t, twhere, file),
                call_ids=_compile(_strs(t, "call_ids", twhere, file), f"{twhere}: call_ids", file),
                personal_data_keys=_strs(t, "personal_data_keys", twhere, file),
                globals=_strs(t, "globals", twhere, file),
                queues=_strs(t, "queues", twhere, file),
                objects=_strs(t, "objects", twhere, file),
                information_ja=_strs(t, "information_ja", twhere, file),
                information_en=_strs(t, "information_en", twhere, file),
                recipient_purpose_ja=_str(t, "recipient_purpose_ja", twhere, file, ""),
                recipient_purpose_en=_str(t, "recipient_purpose_en", twhere, file, ""),
                reads_forms=_bool(t, "reads_forms", twhere, file),
                storage=_storage(_strs(t, "storage", twhere, file), twhere, file),
                optout_url=_str(t, "optout_url", twhere, file, ""),
                location=_bool(t, "location", twhere, file),
            )
            tag_ids.append(tid)
        vendors[vid] = Vendor(
            id=vid,
            recipient=_str(v, "recipient", where, file),
            contact_ja=_str(v, "contact_ja", where, file, ""),
            contact_en=_str(v, "contact_en", where, file, ""),
            privacy_url=_str(v, "privacy_url", where, file, ""),
            optout_url=_str(v, "optout_url", where, file, ""),
            domains=tuple(d.lower() for d in _strs(v, "domains", where, file)),
            tags=tuple(tag_ids),
            **{
                k: _str(v, k, where, file, "")
                for k in ("country", "country_ja", "country_en", "regime_ja", "regime_en", "measures_ja", "measures_en")
            },
            carried_by_default=_bool(v, "carried_by_default", where, file, True),
        )
        if vendors[vid].abroad and not (vendors[vid].regime_ja and vendors[vid].measures_ja):
            raise ConfigError(
                file,
                f"{where}.regime_ja",
                "a recipient abroad needs regime_ja and measures_ja (APPI art. 28: the notice must state them)",
            )
    version = raw.get("policy_version")
    if version is not None and not isinstance(version, str):
        raise ConfigError(file, "policy_version", "expected a string")
    return build(purposes, vendors, tags, version)
