"""The matching engine: which vendor tags a URL or a script is, from the indexes and signatures
compiled out of vendors.toml (gate.vendors loads and checks the file; gate.verdict asks this).

Built once per registry. It remembers what it judged (URLs, inline scripts: bounded Memos of its own),
because a site's pages repeat them; gate.decisions.forget empties them for a cold start.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from . import jsscan, urls

if TYPE_CHECKING:
    from .vendors import Tag, Vendor

V = TypeVar("V")
T = TypeVar("T")
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}
try:  # the same search in C (gate/_fastscan.c), built when a compiler was there at install time
    from . import _fastscan
except ImportError:  # pragma: no cover - depends on the install
    _fastscan = None  # type: ignore[assignment]
_URL_TAIL = re.compile(r"(?:\\/|[^\s\"'<>`)\\])*")
_NO_BASE = urls.URL("https", "", "/")
# The matcher's memos (per registry, per process): at most this many entries each, of texts up to this
# long (4 MB of script text at most); a full memo forgets what it has not used for a while (see Memo).
_CACHE_ENTRIES = 256
_CACHED_TEXT_MAX = 16 * 1024
_URL_ENTRIES = 4096


class Memo(Generic[V]):
    """A bounded cache that keeps what is used. A site's own tags come back on every page and stay;
    what only one page carries (its job photos, say) passes through. Values are never None. One worker
    thread uses it at a time (the event loop).

    Two generations of at most size/2 entries each: new entries join the young one, a hit in the old one
    moves the entry back to the young one, and when the young one is full it becomes the old one and
    the old one is forgotten. An entry goes once half the size of other entries came or came back since
    it was last used; a hit in the young generation is one dictionary lookup (an LRU list would also
    reorder on every hit, which cost more than the lookup on the rewriter's path)."""

    __slots__ = ("_young", "_old", "_half", "size")

    def __init__(self, size: int) -> None:
        self._young: dict[Hashable, V] = {}
        self._old: dict[Hashable, V] = {}
        self._half = max(1, size // 2)
        self.size = size

    def get(self, key: Hashable) -> V | None:
        value = self._young.get(key)
        if value is None and self._old:
            value = self._old.pop(key, None)
            if value is not None:
                self._add(key, value)
        return value

    def put(self, key: Hashable, value: V) -> None:
        young = self._young
        if key not in young:
            if self._old:
                self._old.pop(key, None)
            if len(young) >= self._half:
                self._old, self._young = young, {}
                young = self._young
        young[key] = value

    def _add(self, key: Hashable, value: V) -> None:
        if len(self._young) >= self._half:
            self._old, self._young = self._young, {}
        self._young[key] = value

    def clear(self) -> None:
        self._young.clear()
        self._old.clear()

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._young or key in self._old


def remembered(parse: Callable[[str], T], *, size: int = 4096, longest: int = 512) -> Callable[[str], T]:
    """``parse``, with its answers for strings of at most ``longest`` characters remembered (the last
    ``size`` used): what a site is asked for again and again (its pages' URLs) is parsed once, and long
    unique strings a visitor sends take no memory. ``parse`` must be pure, its answers immutable: they are
    shared."""
    cached = functools.lru_cache(maxsize=size)(parse)

    def get(raw: str) -> T:
        return cached(raw) if len(raw) <= longest else parse(raw)

    return get


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


_word_positions: Callable[[str, tuple[str, ...]], dict[str, list[int]]] = (
    _fastscan.word_positions if _fastscan is not None else _word_positions_py
)


class Matcher:
    """Which tags a URL or a text is: the vendors' hosts, URL patterns, signatures and calls, indexed."""

    __slots__ = (
        "tags",
        "vendor_tags",
        "_tag_hosts",
        "_vendor_domains",
        "_calls",
        "_signatures",
        "_domain_words",
        "words",
        "_word_tags",
        "_url_cache",
        "_script_cache",
    )

    def __init__(self, tags: Mapping[str, Tag], vendors: Mapping[str, Vendor]) -> None:
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
        self.tags = {t.id: t for t in tags.values()}
        self.vendor_tags = {v.id: v.tags for v in vendors.values()}
        self._tag_hosts = _host_index((h, t.id) for t in tags.values() for h in t.hosts)
        self._vendor_domains = _host_index((d, v.id) for v in vendors.values() for d in v.domains)
        self._calls = calls
        self._signatures = _Signatures.of(signatures)
        self._domain_words = frozenset(domains)
        # every word looked for: signatures' leading words, domains, the vendors' globals
        self.words = tuple(sorted({w for w, _, _ in signatures if w} | set(domains) | set(calls.words)))
        self._word_tags = {w: frozenset(ts) for w, ts in word_tags.items()}  # word -> the tags it may be
        self._url_cache: Memo[frozenset[str]] = Memo(_URL_ENTRIES)
        self._script_cache: Memo[Judgment] = Memo(_CACHE_ENTRIES)

    def forget(self) -> None:
        """Forget every URL and script judged (a cold start)."""
        self._url_cache.clear()
        self._script_cache.clear()

    def declares_host(self, host: str) -> bool:
        """Is ``host`` exactly a tag's host or a vendor's domain (gate/inert.py walks the parents)?"""
        return host in self._tag_hosts or host in self._vendor_domains

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
            of_vendors = {t for v in vendors for t in self.vendor_tags[v]}
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

    def word_positions(self, text: str) -> dict[str, list[int]]:
        """Where each of the registry's words stands in ``text`` (see tags_in_text); one search serves
        both tags_in_text and sends_personal_data."""
        return _word_positions(text, self.words)

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
                m = _URL_TAIL.match(text, end)
                assert m is not None  # a starred pattern: it always matches
                url = urls.parse("//" + text[start : m.end()].replace("\\/", "/"), _NO_BASE)
                if url is not None:
                    found |= self.tags_for_url(url)
        return found

    def sends_personal_data(self, text: str) -> bool:
        return self.judge_text(text).sends


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
