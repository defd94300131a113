"""The judge of one start tag and of one element's content: which vendor tags it would contact or run,
and what is sent in its place. Pure: it reads the tag's bytes, the base URL, the visitor's consent and
the registry, does no I/O and remembers nothing (gate.decisions remembers its verdicts; gate.rewrite
wires it to the page).

A frame's own document (``srcdoc``, a ``data:`` URL) and the other reading of an element (its content
as markup) are read by the page reader that asks (``Reader``): the judge only says what to read.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import unquote_to_bytes

from . import htmlstream as hs
from . import urls
from .vendors import Registry

# Elements removed whole when their loading attribute is refused (void ones: just the tag).
VOID_STRIP = frozenset({"img", "image", "embed", "link", "source", "track", "input", "meta", "frame", "portal"})
RAW_STRIP = frozenset({"iframe", "fencedframe"})
# Elements that load their URL as a document of its own (a data: URL's HTML is read for tags).
DOCUMENT_ELEMENTS = frozenset({"iframe", "frame", "object", "embed", "fencedframe", "portal"})
SCRIPT_DATA_TYPES = frozenset({"application/json", "application/ld+json", "text/x-template"})
MAX_DEPTH = 6  # documents and readings nested deeper are not read: what they hold is uncertain

# Loads to a third party that no vendor and no allow_hosts entry names: scripts, frames, pixels,
# beacons (ping) and connection hints. Such a URL counts as the pseudo-tag UNDECLARED, never allowed.
UNDECLARED = "undeclared"
_UNDECLARED_TAGS = frozenset({UNDECLARED})
UNDECLARED_ELEMENTS = frozenset(
    {"script", "iframe", "frame", "fencedframe", "portal", "img", "image", "embed", "object", "link", "ping"}
)
_HINTS = frozenset({"preconnect", "dns-prefetch", "preload", "prefetch", "modulepreload", "prerender"})
_URL_ATTRS = frozenset({b"src", b"data", b"poster", b"background", b"codebase", b"xlink:href"})
_HREF_LOADS = frozenset({"link", "image", "use", "feimage", "script"})

Attrs = Sequence[hs.Attr]


@dataclass
class Outcome:
    """What reading a page (or one decision on it) found."""

    kept: set[str] = field(default_factory=set)
    stripped: set[str] = field(default_factory=set)
    uncertain: int = 0
    personal_data: set[str] = field(default_factory=set)
    form_page: bool = False  # the page has a form asking for a name, e-mail address or phone number
    undeclared: set[str] = field(default_factory=set)  # third-party hosts no vendor or allow_hosts names

    def header(self) -> str:
        """The Gate-Tags header value: ``kept=a,b; stripped=c; uncertain=N``."""
        parts = [f"kept={','.join(sorted(self.kept))}", f"stripped={','.join(sorted(self.stripped))}"]
        if self.uncertain:
            parts.append(f"uncertain={self.uncertain}")
        return "; ".join(parts)

    @property
    def empty(self) -> bool:
        """Nothing found (equal to NOTHING; cheaper than comparing every field)."""
        return not (
            self.kept or self.stripped or self.uncertain or self.personal_data or self.form_page or self.undeclared
        )

    def merge(self, other: Outcome) -> None:
        # (a remembered verdict's outcome usually holds one or two of these: skip the empty ones)
        if other.kept:
            self.kept |= other.kept
        if other.stripped:
            self.stripped |= other.stripped
        if other.uncertain:
            self.uncertain += other.uncertain
        if other.personal_data:
            self.personal_data |= other.personal_data
        if other.form_page:
            self.form_page = True
        if other.undeclared:
            self.undeclared |= other.undeclared


NOTHING = Outcome()  # what a decision that found no tag adds


class Reading(NamedTuple):
    """A document or fragment read by the page reader: its bytes as sent, what it found, how much of
    the base URL it read (a urls.READS_* level), and whether it ended where ours does (in data)."""

    out: bytes
    outcome: Outcome
    base_read: int
    clean: bool


class Reader(Protocol):
    def read_document(self, doc: bytes) -> Reading:
        """A frame's own document (srcdoc, a data: URL's HTML), one level deeper, with a base of its own."""
        ...

    def read_fragment(self, content: bytes, push: str | None) -> Reading:
        """``content`` read as markup inside this page (``push``: the element it is the content of)."""
        ...


@dataclass(frozen=True, slots=True)
class Judging:
    """What a verdict reads besides the element's bytes; fixed while one page is read (except
    ``allowed``, withdrawn from when a form asks for personal data)."""

    registry: Registry
    allowed: frozenset[str]
    refusing: bool  # anything is refused (or undeclared hosts are stripped): otherwise all is kept
    encoding: str
    depth: int
    personal_data_allowed: bool
    page_host: str  # which hosts are the site's own
    base: urls.URL
    foreign: bool  # in foreign content (SVG, MathML), outside an integration point
    reader: Reader


class Verdict(NamedTuple):
    """A decision: what is sent (None: the element goes), what it adds to the outcome, and how much
    of the base URL it read (see urls.base_read)."""

    out: bytes | None
    outcome: Outcome
    base_read: int


class Content(NamedTuple):
    """What an element's content is: the tags it would contact or run, those it sends personal data
    to where that is not allowed, and whether it could not be read to its end."""

    tags: frozenset[str]
    personal: frozenset[str]
    uncertain: bool
    script: bool  # a <script> (an unreadable one counts as uncertain even when a tag is refused)


def judge(raw: bytes, attrs_at: int, name: str, attrs: Attrs, ctx: Judging) -> Verdict:
    """The start tag ``raw`` (``name``, ``attrs`` parsed from ``raw[attrs_at:]``) as sent: unchanged,
    without some attributes, or None (the element stripped)."""
    j = _Judge(ctx)
    out = j.tag(raw, attrs_at, name, attrs)
    return Verdict(out, j.outcome, j.base_read)


def judge_content(content: bytes, name: str, dual: bool, attrs: Attrs, ctx: Judging) -> tuple[Content, Verdict]:
    """An element held whole (script, style, or content read both ways when ``dual``): what its
    content is, and what reading it added (the Verdict's ``out`` is unused)."""
    j = _Judge(ctx)
    content_of = j.content(content, name, dual, attrs)
    return content_of, Verdict(None, j.outcome, j.base_read)


def element(content: Content, tag_out: bytes | None, rest: bytes, ctx: Judging) -> Verdict:
    """An element held whole, from what its content is and its start tag's verdict (``tag_out``;
    ``rest``: the bytes after the start tag): sent whole, or stripped."""
    outcome = Outcome()
    refused = (content.tags - ctx.allowed) | content.personal
    if refused or tag_out is None or (content.uncertain and ctx.refusing):
        outcome.stripped |= refused - _UNDECLARED_TAGS
        if content.uncertain and tag_out is not None and (not refused or content.script):
            outcome.uncertain += 1
        return Verdict(None, outcome, urls.READS_NOTHING)
    outcome.kept |= content.tags
    return Verdict(tag_out + rest, outcome, urls.READS_NOTHING)


class _Judge:
    """One judgment's working state."""

    __slots__ = ("ctx", "outcome", "base_read", "unsure", "doc_personal")

    def __init__(self, ctx: Judging) -> None:
        self.ctx = ctx
        self.outcome = Outcome()
        self.base_read = urls.READS_NOTHING
        self.unsure = False  # a document read for a URL could not be read to its end
        self.doc_personal: frozenset[str] = frozenset()  # ... and that document sends personal data

    # -- a start tag -------------------------------------------------------------------------------
    def tag(self, raw: bytes, attr_base: int, name: str, attrs: Attrs) -> bytes | None:
        ctx = self.ctx
        remove: list[tuple[int, int]] = []
        replace_at: list[tuple[int, int, bytes]] = []
        seen: set[bytes] = set()
        strip = False
        for key, value, a_start, a_end in attrs:
            if key in seen:
                continue  # the first of duplicate attributes wins; the rest are dropped by the parser
            seen.add(key)
            tags, primary = self.attr_tags(name, key, value, attrs)
            unsure, personal = self.unsure, self.doc_personal  # from a frame's data: document
            if unsure or personal:
                self.unsure, self.doc_personal = False, frozenset()
            if unsure and ctx.refusing and not personal:  # it could not be read to its end
                self.outcome.uncertain += 1
                if primary:
                    strip = True
                else:
                    remove.append((a_start, a_end))
                continue
            if key == b"srcdoc" and value is not None:
                if ctx.depth >= MAX_DEPTH:  # a document nested deeper than gate reads: fail closed
                    if ctx.refusing and name == "iframe":  # the one element whose srcdoc is a document
                        self.outcome.uncertain += 1
                        strip = True
                    continue
                new = self.srcdoc(value)
                if new is not None:
                    replace_at.append((a_start, a_end, b' srcdoc="' + new + b'"'))
                continue
            if not tags:
                continue
            refused = (tags - ctx.allowed) | personal
            if refused:
                self.outcome.stripped |= refused - _UNDECLARED_TAGS
                if primary:
                    strip = True
                else:
                    remove.append((a_start, a_end))
            else:
                self.outcome.kept |= tags
        if strip:
            return None
        if not remove and not replace_at:
            return raw
        edits = sorted([(s, e, b" ") for s, e in remove] + replace_at)
        out, last = [], 0
        for s, e, rep in edits:
            out.append(raw[last : attr_base + s])
            out.append(rep)
            last = attr_base + e
        out.append(raw[last:])
        return b"".join(out)

    def attr_tags(self, name: str, key: bytes, value: bytes | None, attrs: Attrs) -> tuple[frozenset[str], bool]:
        """Tags an attribute would contact or run, and whether it is the element's loading attribute."""
        if value is None:
            return frozenset(), False
        encoding = self.ctx.encoding
        if key.startswith(b"on"):
            return self.text_tags(hs.attr_text(value, encoding)), False
        if key == b"style":
            return self.css_tags(hs.attr_text(value, encoding)), False
        text = hs.attr_text(value, encoding)
        if key == b"href" and name == "base":
            return self.url_tags(text, name), True
        if key in _URL_ATTRS or (key == b"href" and (name in _HREF_LOADS or self.ctx.foreign)):
            # a stylesheet or icon <link> is not one of the loads undeclared hosts are stripped from
            element = "link-sheet" if name == "link" and not _is_hint(attrs, encoding) else name
            return self.url_tags(text, element), name in VOID_STRIP or name in RAW_STRIP or name == "script"
        if key == b"srcset":
            found: set[str] = set()
            for cand in text.split(","):
                found |= self.url_tags(cand.strip().split(" ")[0] if cand.strip() else "", name)
            return frozenset(found), name in VOID_STRIP
        if key == b"ping":
            found = set()
            for u in text.split():
                found |= self.url_tags(u, "ping")
            return frozenset(found), False
        if key == b"content" and name == "meta":
            equiv = hs.attr_text(hs.first_value(attrs, b"http-equiv"), encoding).strip().lower()
            if equiv == "refresh" and "url" in text.lower():
                target = text.split("=", 1)[1] if "=" in text else ""
                return self.url_tags(target.strip().strip("'\""), name), True
            return frozenset(), False
        if key in (b"href", b"action", b"formaction"):
            self.reads_base(text)
            url = urls.parse(text, self.ctx.base)
            if url is not None and url.scheme == "javascript":
                return self.text_tags(unquote_to_bytes(url.path).decode("utf-8", "replace")), False
        return frozenset(), False

    def url_tags(self, text: str, element: str) -> frozenset[str]:
        ctx = self.ctx
        self.reads_base(text)
        url = urls.parse(text, ctx.base)
        if url is None:
            return frozenset()
        if url.scheme == "javascript":
            return self.text_tags(unquote_to_bytes(url.path).decode("utf-8", "replace"))
        if url.scheme == "data":
            text = data_url_text(url.path)
            found = self.text_tags(text)
            if element in DOCUMENT_ELEMENTS and "<" in text:
                found |= self.document_tags(text)
            return found
        tags = ctx.registry.tags_for_url(url)
        if not tags and element in UNDECLARED_ELEMENTS and ctx.registry.is_undeclared(url, ctx.page_host):
            self.outcome.undeclared.add(url.host)
            if ctx.registry.strip_undeclared:
                return _UNDECLARED_TAGS
        return tags

    def document_tags(self, doc: str) -> frozenset[str]:
        """The tags a document loaded in a frame would load (a data: URL's), read as gate reads a page.
        Where it cannot be read to its end (nested too deep, uncertain inside) self.unsure is set."""
        if self.ctx.depth >= MAX_DEPTH:
            self.unsure = True
            return frozenset()
        sub = self.ctx.reader.read_document(doc.encode("utf-8", "surrogatepass"))
        self.base_read = max(self.base_read, sub.base_read)
        if sub.outcome.uncertain:
            self.unsure = True
        if sub.outcome.personal_data:  # the document cannot be rewritten in place: the frame goes
            self.outcome.personal_data |= sub.outcome.personal_data
            if not self.ctx.personal_data_allowed:
                self.doc_personal = frozenset(sub.outcome.personal_data)
        return frozenset(sub.outcome.stripped | sub.outcome.kept)

    def srcdoc(self, value: bytes) -> bytes | None:
        """Gate an iframe's srcdoc document; the new escaped value, or None when unchanged."""
        doc = hs.attr_text(value, self.ctx.encoding).encode("utf-8", "surrogatepass")
        sub = self.ctx.reader.read_document(doc)
        self.outcome.merge(sub.outcome)
        self.base_read = max(self.base_read, sub.base_read)
        if sub.out == doc:
            return None
        return hs.escape_attr(sub.out.decode("utf-8", "replace")).encode(self.ctx.encoding, "xmlcharrefreplace")

    def css_tags(self, css: str) -> frozenset[str]:
        found: set[str] = set()
        for u in hs.css_urls(css):
            found |= self.url_tags(u, "style")
        return frozenset(found)

    def text_tags(self, text: str) -> frozenset[str]:
        return self.ctx.registry.tags_in_text(text) if text else frozenset()

    def reads_base(self, text: str) -> None:
        """Note that ``text`` is about to be resolved against the base (see gate.decisions)."""
        self.base_read = max(self.base_read, urls.base_read(text, self.ctx.base))

    # -- an element's content ----------------------------------------------------------------------
    def content(self, content: bytes, name: str, dual: bool, attrs: Attrs) -> Content:
        ctx = self.ctx
        tags: set[str] = set()
        personal: set[str] = set()  # tags this script would send personal data to, when that is not allowed
        uncertain = False
        if name == "script":  # its src is read with the other attributes, by the start tag's verdict
            typ = hs.attr_text(hs.first_value(attrs, b"type"), ctx.encoding).strip().lower()
            if typ not in SCRIPT_DATA_TYPES and content.strip():
                found, sends, unsure = ctx.registry.judge_script(content, ctx.encoding, typ == "module")
                tags |= found
                uncertain = unsure  # it names a vendor but could not be read to its end
                if sends:
                    self.outcome.personal_data |= found
                    if not ctx.personal_data_allowed:
                        personal = set(found)
        elif name == "style":
            tags |= self.css_tags(content.decode(ctx.encoding, "replace"))
        if dual:
            refused_view, kept_view, clean = self.markup_view(content, None if name == "noscript" else name)
            tags |= refused_view | kept_view
            uncertain = uncertain or not clean
        return Content(frozenset(tags), frozenset(personal), uncertain, name == "script")

    def markup_view(self, content: bytes, push: str | None) -> tuple[set[str], set[str], bool]:
        """Read ``content`` as markup (the other reading): tags refused there, tags kept, and whether
        that reading ends where ours does (in the data state)."""
        if b"<" not in content:
            return set(), set(), True
        if self.ctx.depth >= MAX_DEPTH:
            return set(), set(), False
        sub = self.ctx.reader.read_fragment(content, push)
        self.base_read = max(self.base_read, sub.base_read)
        refused = set(sub.outcome.stripped)
        if sub.outcome.undeclared:  # read that way, it loads from hosts nobody declared
            self.outcome.undeclared |= sub.outcome.undeclared
            if self.ctx.registry.strip_undeclared:
                refused |= _UNDECLARED_TAGS
        return refused, set(sub.outcome.kept), sub.clean and not sub.outcome.uncertain


def _is_hint(attrs: Attrs, encoding: str) -> bool:
    for a in attrs:
        if a[0] == b"rel":
            return bool(_HINTS & set(hs.attr_text(a[1] or b"", encoding).lower().split()))
    return False


_PERSONAL_TYPES = (b"email", b"tel")
_PERSONAL_WORDS = (b"name", b"mail", b"tel", b"phone")
_NOT_TYPED = (b"hidden", b"submit", b"button", b"image", b"reset", b"checkbox", b"radio", b"file")


def asks_personal_data(attrs: Attrs) -> bool:
    """An <input> for a name, an e-mail address or a phone number: by its type, or by its name,
    autocomplete or id ("email", "tel-national", "family-name", "applicant_phone" …)."""
    found = False
    for a in attrs:
        key, value = a[0], (a[1] or b"").strip(b"\"' \t\n\r\x0c").lower()
        if key == b"type":
            if value in _PERSONAL_TYPES:
                return True
            if value in _NOT_TYPED:
                return False
        elif key in (b"name", b"autocomplete", b"id") and any(w in value for w in _PERSONAL_WORDS):
            found = True
    return found


def data_url_text(body: str) -> str:
    """The text of a data: URL (for documents and scripts in iframes, objects, scripts)."""
    meta, _, payload = body.partition(",")
    try:
        raw = (
            base64.b64decode(unquote_to_bytes(payload), validate=False)
            if meta.lower().endswith(";base64")
            else unquote_to_bytes(payload)
        )
    except ValueError:
        return payload
    return raw.decode("utf-8", "replace")
