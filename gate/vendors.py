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
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, TypeVar

from . import jsscan, urls
from .errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "vendors.toml"
PACKAGED_PATH = Path(__file__).resolve().parent / "data" / "vendors.toml"
T = TypeVar("T")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}
_word_positions_c: Callable[[str, tuple[str, ...]], dict[str, list[int]]] | None
try:  # the same search in C (gate/_fastscan.c), built when a compiler was there at install time
    from ._fastscan import word_positions as _word_positions_c
except ImportError:  # pragma: no cover - depends on the install
    _word_positions_c = None
_URL_TAIL = re.compile(r"(?:\\/|[^\s\"'<>`)\\])*")
_NO_BASE = urls.URL("https", "", "/")
# The decision caches (per registry, per process): at most this many entries each, of texts up to this
# long (4 MB of script text at most); a full cache forgets what it used least recently.
_CACHE_ENTRIES = 256
_CACHED_TEXT_MAX = 16 * 1024
_CACHED_TAGS = 1024  # tags, elements and attribute parses, of up to 2 KB each (see rewrite.py)


class Memo:
    """A bounded cache that forgets the entry used least recently. A site's own tags come back on
    every page and stay; what only one page carries (its job photos, say) passes through. Values are
    never None. One worker thread uses it at a time (the event loop)."""

    __slots__ = ("_entries", "size")

    def __init__(self, size: int) -> None:
        self._entries: OrderedDict = OrderedDict()
        self.size = size

    def get(self, key):
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries


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
        host = host[dot + 1 :] if dot >= 0 else ""
    return found


@dataclass(frozen=True)
class Registry:
    purposes: Mapping[str, Purpose]
    vendors: Mapping[str, Vendor]
    tags: Mapping[str, Tag]
    version: str
    _tag_hosts: Mapping[str, tuple[tuple[str, str], ...]] = field(repr=False, default_factory=dict)
    _vendor_domains: Mapping[str, tuple[tuple[str, str], ...]] = field(repr=False, default_factory=dict)
    _calls: _Calls = field(repr=False, default_factory=lambda: _Calls({}, {}, {}))
    _url_cache: Memo = field(repr=False, default_factory=lambda: Memo(4096), compare=False)
    _script_cache: Memo = field(repr=False, default_factory=lambda: Memo(_CACHE_ENTRIES), compare=False)
    # rewrite.PageRewriter's: its decisions on tags and elements, and its attribute parses
    _tag_cache: Memo = field(repr=False, default_factory=lambda: Memo(_CACHED_TAGS), compare=False)
    _attrs_cache: Memo = field(repr=False, default_factory=lambda: Memo(_CACHED_TAGS), compare=False)
    _signatures: _Signatures = field(repr=False, default_factory=lambda: _Signatures({}, ()))
    _domain_words: frozenset[str] = field(repr=False, default=frozenset())
    _words: tuple[str, ...] = field(repr=False, default=())  # every word looked for: signatures', domains
    _word_tags: Mapping[str, frozenset[str]] = field(repr=False, default_factory=dict)  # word -> tags it may be
    # Per tag, a short hash of what a consent to it covers (see tag_fingerprint); a site's registry
    # (for_site) keeps only the tags the site carries, so its keys are the carried tags.
    fingerprints: Mapping[str, str] = field(repr=False, default_factory=dict)
    declared_version: str = ""  # vendors.toml's policy_version, when set
    # A site's third-party hosts that are no recipient (its CDN, fonts, video or map embeds: gate.toml's
    # allow_hosts and csp_hosts), and whether loads to any other undeclared host are stripped.
    own_hosts: tuple[str, ...] = ()
    strip_undeclared: bool = False
    _declared_hosts: frozenset[str] = field(repr=False, default=frozenset())

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
        if by_host or vendors:
            # A tag's url_patterns are tried only where its hosts or its vendor's domains cover the URL
            # (vendors.toml's header says so), which is also much cheaper on a worker's first page.
            of_vendors = {t for v in vendors for t in self.vendors[v].tags}
            found = {t for t in by_host | of_vendors if any(p.match(key) for p in self.tags[t].url_patterns)}
            result = frozenset(found or by_host or of_vendors)
        self._url_cache.put(key, result)
        return result

    def judge_script(self, content: bytes, encoding: str, module: bool = False) -> Judgment:
        """judge_text of an inline script's bytes (``module``: a ``type=module`` script). Remembered
        by the bytes: a site sends the same tag snippets on every page."""
        key = (encoding, content, module)
        hit = self._script_cache.get(key)
        if hit is not None:
            return hit
        result = self.judge_text(content.decode(encoding, "replace"), module)
        if len(content) <= _CACHED_TEXT_MAX:
            self._script_cache.put(key, result)
        return result

    def judge_text(self, text: str, module: bool = False) -> Judgment:
        """Which tags a script (or handler, or javascript: URL) is, and whether it sends them personal
        data. The registry's words are searched first (in C); only text holding one is tokenized
        (gate.jsscan) and read for the vendors' calls and personal-data keys. Text that names a vendor
        but cannot be read to its end counts as that vendor's, and as unsure."""
        at = self.word_positions(text)
        if not at and not self._signatures.unanchored:
            return _NOTHING  # the common case: a first-party script naming no vendor
        tags = set(self._matched_tags(text, at))
        if not tags and not any(w in self._calls.words for w in at):
            return Judgment(frozenset(tags), False, False)
        script = jsscan.read(text, module)
        called, personal = self._calls.judge(script, tags)
        tags |= called | personal
        unsure = False
        if not script.clean:  # what was not read could be any call of a vendor it names
            tags |= {t for w in at if w not in self._calls.words for t in self._word_tags.get(w, ())}
            tags |= self._calls.named(text)
            unsure = bool(tags)
        return Judgment(frozenset(tags), bool(personal), unsure)

    def clear_caches(self) -> None:
        """Forget every remembered decision (the benchmark's cold runs; a reloaded vendors.toml is a
        new Registry and starts empty anyway)."""
        self._url_cache.clear()
        self._script_cache.clear()
        self._tag_cache.clear()
        self._attrs_cache.clear()

    def word_positions(self, text: str) -> dict[str, list[int]]:
        """Where each of the registry's words stands in ``text`` (see tags_in_text); one search serves
        both tags_in_text and sends_personal_data."""
        return _word_positions(text, self._words)

    def tags_in_text(self, text: str) -> frozenset[str]:
        """Tags a script or attribute text is (see judge_text)."""
        return self.judge_text(text).tags

    def _matched_tags(self, text: str, at: dict[str, list[int]]) -> set[str]:
        """Tags whose signature, or a URL on a vendor host, appears in the text (``at``: its
        word_positions)."""
        found = self._signatures.matches(text, at)
        for domain, positions in at.items():
            if domain not in self._domain_words:
                continue
            for i in positions:
                end = i + len(domain)
                if end < len(text) and (text[end].isalnum() or text[end] == "-"):
                    continue  # "facebook.network": another host
                start = i
                while start > 0 and (text[start - 1].isalnum() or text[start - 1] in ".-"):
                    start -= 1
                m = _URL_TAIL.match(text, end)  # matches the empty string: never None
                url = urls.parse("//" + text[start : m.end()].replace("\\/", "/"), _NO_BASE)  # type: ignore[union-attr]
                if url is not None:
                    found |= self.tags_for_url(url)
        return found

    def sends_personal_data(self, text: str) -> bool:
        return self.judge_text(text).sends

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
    domains = sorted(
        {d.split("/")[0] for v in vendors.values() for d in v.domains}
        | {h.split("/")[0] for t in tags.values() for h in t.hosts},
        key=len,
        reverse=True,
    )
    signatures = tuple((leading_word(p.pattern), p, t.id) for t in tags.values() for p in t.signatures)
    calls = _Calls.of(tags.values())
    word_tags: dict[str, set[str]] = {}
    for word, _, tag_id in signatures:
        if word:
            word_tags.setdefault(word, set()).add(tag_id)
    for word, owners in calls.words.items():
        word_tags.setdefault(word, set()).update(owners)
    for v in vendors.values():
        for d in v.domains:
            word_tags.setdefault(d.split("/")[0], set()).update(v.tags)
    for t in tags.values():
        for h in t.hosts:
            word_tags.setdefault(h.split("/")[0], set()).add(t.id)
    return Registry(
        purposes=dict(sorted(purposes.items(), key=lambda kv: kv[1].n)),
        vendors=dict(vendors),
        tags=dict(tags),
        version=explicit_version or _version(purposes, vendors, tags),
        _tag_hosts=_host_index((h, t.id) for t in tags.values() for h in t.hosts),
        _vendor_domains=_host_index((d, v.id) for v in vendors.values() for d in v.domains),
        _calls=calls,
        _signatures=_Signatures.of(signatures),
        _domain_words=frozenset(domains),
        _words=tuple(sorted({w for w, _, _ in signatures if w} | set(domains) | set(calls.words))),
        _word_tags={w: frozenset(ts) for w, ts in word_tags.items()},
        fingerprints={
            t.id: tag_fingerprint(t, vendors[t.vendor], purposes, explicit_version or "") for t in tags.values()
        },
        declared_version=explicit_version or "",
    )


def _word_positions_py(text: str, words: tuple[str, ...]) -> dict[str, list[int]]:
    """For each of ``words`` (ASCII, lower case) found in ``text``, every index where it starts,
    overlapping ones included. Only A-Z are lowered: a character above U+007F never equals a word's
    (str.lower() would turn U+212A KELVIN SIGN into "k" and U+0130 into two characters, moving every
    index after it). gate/_fastscan.c's word_positions answers the same: 0.04 ms against 0.28 ms on
    the 100 KB demo page's 9 inline scripts (best of 5 × 300 runs)."""
    lowered = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    out: dict[str, list[int]] = {}
    for word in words:
        i = lowered.find(word)
        while i >= 0:
            out.setdefault(word, []).append(i)
            i = lowered.find(word, i + 1)
    return out


_word_positions = _word_positions_c or _word_positions_py


@dataclass(frozen=True)
class _Signatures:
    """Patterns that each open with a word they cannot match without (see leading_word): a pattern is
    only tried where its word stands, and only the words found are visited. Python's engine is slow
    on case-insensitive scans: one alternation of the personal-data signatures measured 0.14 ms over
    a 1,098-character script."""

    by_word: Mapping[str, tuple[tuple[re.Pattern[str], str], ...]]  # word -> (pattern, label)
    unanchored: tuple[tuple[re.Pattern[str], str], ...]  # patterns with no leading word: searched

    @classmethod
    def of(cls, entries: Iterable[tuple[str | None, re.Pattern[str], str]]) -> _Signatures:
        by_word: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        unanchored: list[tuple[re.Pattern[str], str]] = []
        for word, pattern, label in entries:
            (by_word.setdefault(word, []) if word else unanchored).append((pattern, label))
        return cls({w: tuple(v) for w, v in by_word.items()}, tuple(unanchored))

    def matches(self, text: str, at: Mapping[str, list[int]], first: bool = False) -> set[str]:
        """The labels whose pattern matches ``text``; ``at`` is word_positions(text). ``first``: stop
        at the first label found."""
        found: set[str] = set()
        for word, positions in at.items():
            for pattern, label in self.by_word.get(word, ()):
                if label not in found and any(pattern.match(text, i) for i in positions):
                    found.add(label)
                    if first:
                        return found
        for pattern, label in self.unanchored:
            if label not in found and pattern.search(text):
                found.add(label)
                if first:
                    return found
        return found


class Judgment(NamedTuple):
    """What gate reads in a script: the tags it is, whether it sends them personal data, and whether
    it could not be read to its end while naming a vendor (then its tags are the vendors it names)."""

    tags: frozenset[str]
    sends: bool
    unsure: bool


_NOTHING = Judgment(frozenset(), False, False)
_ESCAPE_WORD = "\\u"  # an identifier may spell a vendor's global with escapes (\u0066bq): read it
_CALL_SUFFIXES = ("call", "apply", "bind")


@dataclass(frozen=True)
class _Calls:
    """The vendors' globals as a script uses them (vendors.toml ``calls``), read on jsscan's tokens.

    A global that one tag lists (fbq, criteo_q, Adjust) makes any script naming it that tag's, called
    or not: a script that passes ``fbq`` around uses it as surely as one that calls it. A global that
    several tags share (gtag, ytag) is a call whose strings say whose it is (``call_ids``: 'G-…',
    'AW-…'); a call with none of them is nobody's in particular (``gtag('js', new Date())``), unless an
    argument is a variable whose value cannot be read here: then it is every sharer's (the strict
    reading, as for a URL on a vendor's domain)."""

    owners: Mapping[str, frozenset[str]]  # global -> tags listing it
    ids: Mapping[str, tuple[re.Pattern[str], ...]]  # tag -> call_ids
    keys: Mapping[str, tuple[str, ...]]  # tag -> personal_data_keys
    words: Mapping[str, frozenset[str]] = field(default_factory=dict)  # searched word -> tags
    name: re.Pattern[str] | None = None  # any of the globals as a whole name (case-sensitive)

    def named(self, text: str) -> set[str]:
        """Tags whose global ``text`` names as a whole word ("Adjust", not "adjustHeight"): what an
        unreadable script may be."""
        if self.name is None:
            return set()
        return {t for m in self.name.finditer(text) for t in self.owners[m.group()]}

    @classmethod
    def of(cls, tags: Iterable[Tag]) -> _Calls:
        owners: dict[str, set[str]] = {}
        ids, keys = {}, {}
        for t in tags:
            for g in t.calls:
                owners.setdefault(g, set()).add(t.id)
            ids[t.id], keys[t.id] = t.call_ids, t.personal_data_keys
        words: dict[str, set[str]] = {_ESCAPE_WORD: set()}
        for g, ts in owners.items():
            words.setdefault(g.lower(), set()).update(ts)
        name = (
            re.compile(
                r"(?<![\w$])(?:" + "|".join(sorted(map(re.escape, owners), key=len, reverse=True)) + r")(?![\w$])"
            )
            if owners
            else None
        )
        return cls(
            {g: frozenset(ts) for g, ts in owners.items()},
            ids,
            keys,
            {w: frozenset(ts) for w, ts in words.items()},
            name,
        )

    def judge(self, script: jsscan.Script, known: set[str]) -> tuple[set[str], set[str]]:
        """(tags the script calls, tags it sends personal data to); ``known``: tags found otherwise."""
        called: set[str] = set()
        users: dict[str, list[tuple[int, int]]] = {}  # tag -> the calls of its globals (for "set", "user_data", …)
        for ref in script.references():
            segments = ref.segments
            while len(segments) > 1 and segments[-1] in _CALL_SUFFIXES:
                segments = segments[:-1]
            for k, segment in enumerate(segments):
                owners = self.owners.get(segment)
                if not owners:
                    continue
                for t in owners:
                    users.setdefault(t, [])
                    if ref.call is not None:
                        users[t].append(ref.call)
                if len(owners) == 1:
                    called |= owners
                elif ref.call is not None and k == len(segments) - 1:
                    called |= self._whose(script, ref.call, owners)
        personal = {
            t
            for t in called | known | set(users)
            if self.keys.get(t) and self._sends(script, self.keys[t], users.get(t, ()))
        }
        return called, personal

    def _whose(self, script: jsscan.Script, call: tuple[int, int], owners: frozenset[str]) -> set[str]:
        args = script.arguments(call) if call[0] != call[1] else []
        if not args:
            return set()
        if args[-1][1] - args[0][0] > jsscan.MAX_SPAN:
            return set(owners)  # too long to read at every level of calls nested in calls: strict
        named = {
            t
            for s in script.strings((args[0][0], args[-1][1]))
            for t in owners
            if any(p.search(s) for p in self.ids.get(t, ()))
        }
        if named:
            return named
        return set(owners) if any(script.is_opaque(a) for a in args) else set()

    @staticmethod
    def _sends(script: jsscan.Script, keys: tuple[str, ...], calls: Iterable[tuple[int, int]]) -> bool:
        plain = {k for k in keys if "/" not in k}
        scoped = [tuple(k.split("/", 1)) for k in keys if "/" in k]
        for entries in script.objects():
            if any(key in plain and not script.is_empty(value) for key, value in entries):
                return True
            for discriminator, key in scoped:
                tagged = any(_single_string(script, value) == discriminator for _, value in entries)
                if tagged and any(k == key and not script.is_empty(v) for k, v in entries):
                    return True
        for call in calls:  # gtag('set', 'user_data', {...}): a key given as a string argument
            args = script.arguments(call) if call[0] != call[1] else []
            for a, b in zip(args, args[1:], strict=False):
                if _single_string(script, a) in plain and not script.is_empty(b):
                    return True
        return False


def _single_string(script: jsscan.Script, span: tuple[int, int]) -> str | None:
    if span[1] - span[0] == 1 and script.tokens[span[0]].kind == jsscan.STRING:
        return script.tokens[span[0]].value
    return None


def _calls_of(t: Mapping, where: str, file: str) -> tuple[str, ...]:
    names = _strs(t, "calls", where, file)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_$][\w$]{2,}", name):
            raise ConfigError(
                file, f"{where}: calls", f"expected a JavaScript global of 3 or more characters, got {name!r}"
            )
    return names


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
    return word.lower() if len(word) >= 3 and word.isascii() else None


# -- loading ---------------------------------------------------------------------------------
def _str(d: Mapping, key: str, where: str, file: str, default: str | None = None) -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(
            file, f"{where}.{key}", f"expected a string, got {type(v).__name__ if v is not None else 'nothing'}"
        )
    return v


def _strs(d: Mapping, key: str, where: str, file: str) -> tuple[str, ...]:
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


def _bool(d: Mapping, key: str, where: str, file: str, default: bool = False) -> bool:
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
