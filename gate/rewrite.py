"""Per-response gate: reads the page as a browser would, keeps or strips each vendor tag, injects
the stubs and the banner. feed(bytes) -> bytes, close() -> bytes; every byte outside a removed tag
and the injected elements is the upstream's.

How it reads (see htmlstream for the lexical parts):
- Text and tags that can neither load nor change tokenization are skipped by one regex (in C).
- Everything else is read as a tag, with attributes decoded as the attribute states do.
- Elements whose content decides (script, style, noscript) are held until their end tag, up to
  ``carry_over`` bytes; past that, and wherever the browser's reading could differ from ours, the
  element is stripped when anything is refused ("uncertain", counted): fail closed, never read past.
- noscript is read both ways (scripting on: raw text; off: markup). So are raw-text elements where the
  tree builder may not switch the tokenizer (foreign content, <select>). Removing an element whose
  two readings diverge makes them agree again on everything after it.
- Decisions on tags and whole elements are remembered per registry (_remembered): a site's pages repeat
  their tags, so after the first page most stops are a dictionary lookup.
- Removing an element never lets what was around it join into new markup (_removed).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import unquote_to_bytes

from . import htmlstream as hs
from . import inert, urls
from .vendors import Registry, per_consent


@dataclass(frozen=True)
class PagePlan:
    """What one response's rewrite needs, fixed before the first byte."""

    registry: Registry
    allowed: frozenset[str]  # tag ids let through for this visitor on this site
    base_url: urls.URL  # the page's public URL, for relative URLs
    head_html: str = ""  # injected first in <head> (stubs, consent defaults)
    body_html: str = ""  # injected before </body> (banner or settings link, footer link)
    carry_over: int = 256 * 1024
    gating: bool = True  # False: pass through untouched (benchmark baseline)
    personal_data_allowed: bool = False  # False: a script sending hashed e-mail/phone is stripped
    form_readers: frozenset[str] = frozenset()  # withdrawn from allowed once a personal-data form is read


@dataclass
class Outcome:
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

    def merge(self, other: Outcome) -> None:
        self.kept |= other.kept
        self.stripped |= other.stripped
        self.uncertain += other.uncertain
        self.personal_data |= other.personal_data
        self.form_page |= other.form_page
        self.undeclared |= other.undeclared


_NOTHING = Outcome()  # a decision that found no tag
T = TypeVar("T")

# Elements removed whole when their loading attribute is refused (void ones: just the tag).
VOID_STRIP = {"img", "image", "embed", "link", "source", "track", "input", "meta", "frame", "portal"}
RAW_STRIP = {"iframe", "fencedframe"}
# Elements that load their URL as a document of its own (a data: URL's HTML is read for tags).
DOCUMENT_ELEMENTS = {"iframe", "frame", "object", "embed", "fencedframe", "portal"}
RAWTEXT = {"style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"}
SCRIPT_DATA_TYPES = {"application/json", "application/ld+json", "text/x-template"}
BREAKOUT = set(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    "listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)
HTML_INTEGRATION = {"foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml+"}
MAX_DEPTH = 6
# Tag and element decisions are remembered per registry (vendors.Memo, 1,024 entries) for tags and
# elements up to this long.
_CACHED_TAG_MAX = 2048


class _ByBase:
    """In the decision cache in place of a decision: look again with this much of the base URL
    (a urls.READS_* level) added to the key."""

    __slots__ = ("read",)

    def __init__(self, read: int) -> None:
        self.read = read


_BY_BASE = {read: _ByBase(read) for read in (urls.READS_SCHEME, urls.READS_ORIGIN, urls.READS_ALL)}

DATA, STREAM, UNIT, PLAINTEXT = range(4)


@dataclass
class _Stream:
    """Content being copied through (keep) or dropped, until its end is found."""

    kind: str  # "comment" | "bogus" | "raw" | "script" | "tag"
    keep: bool
    name: str = ""
    sub: int = 0  # script data state
    tag_state: str = "name"
    then: str = ""  # for "tag": the element whose content follows ("" = none)


@dataclass
class _Unit:
    """An element held whole until its end tag: offsets are relative to the unit's first byte."""

    kind: str  # "script" | "style" | "dual"
    name: str
    tag_end: int
    attrs: list
    scan: int
    sub: int = 0


class PageRewriter:
    """feed(bytes) -> bytes, close() -> bytes; ``encoding`` is a Python codec name."""

    def __init__(
        self,
        plan: PagePlan,
        encoding: str = "utf-8",
        *,
        fragment: bool = False,
        foreign: list[str] | None = None,
        depth: int = 0,
        base: urls.URL | None = None,
        base_set: bool | None = None,
    ) -> None:
        self.plan, self.encoding, self.registry = plan, encoding, plan.registry
        self.allowed = plan.allowed
        self.refusing = plan.gating and bool(set(plan.registry.tags) - plan.allowed)
        self.outcome = Outcome()
        self.fragment, self.depth = fragment, depth
        self.buf = b""
        self.out: list[bytes] = []
        self.state = DATA
        self.stream: _Stream | None = None
        self.unit: _Unit | None = None
        self.foreign: list[str] = list(foreign or [])
        self.uncertain_mode = False
        self.in_select = False
        self.base = base or plan.base_url
        self.fallback_base = self.base  # what a <base href> of this document resolves against
        self.base_set = base is not None if base_set is None else base_set
        self.head_done = fragment or not plan.head_html
        self.body_done = fragment or not plan.body_html
        self._sent_tail = b""  # the last byte already returned by feed()
        self._base_read = urls.READS_NOTHING  # while deciding: how much of self.base a URL was resolved against
        self._unsure = False  # set by _url_tags when a document it read could not be read to its end
        self._doc_personal: frozenset[str] = frozenset()  # ... and when that document sends personal data
        # What a decision reads besides the element's bytes and the base URL (see _remembered).
        self.refusing = self.refusing or (plan.gating and plan.registry.strip_undeclared)
        # What a decision reads besides the element's bytes and the base URL (see _remembered); the page's
        # host decides which hosts are third parties.
        self._context = (
            self.allowed,
            self.refusing,
            encoding,
            depth,
            plan.carry_over,
            plan.personal_data_allowed,
            plan.base_url.host,
        )

    # -- public --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        if not self.plan.gating:
            return data
        self.buf = self.buf + data if self.buf else data
        self._run(final=False)
        return self._flush()

    def close(self) -> bytes:
        if not self.plan.gating:
            return b""
        self._run(final=True)
        if self.buf:  # whatever could not be read is not a tag a browser acts on
            self.out.append(self.buf)
            self.buf = b""
        if not self.head_done:
            self._inject_head()
        if not self.body_done:
            self._inject_body()
        return self._flush()

    @property
    def ended_in_data(self) -> bool:
        return self.state == DATA and not self.buf

    # -- the loop --------------------------------------------------------------------------------
    def _flush(self) -> bytes:
        out = b"".join(self.out)
        self.out = []
        if out:
            self._sent_tail = out[-1:]
        return out

    def _removed(self) -> None:
        """An element was removed here. A "<" just before it was text only because the element's own
        "<" followed it: with the element gone it would open a tag with whatever follows ("<" "<script
        …></script>" "img src=…>" would become a live <img>). An empty comment keeps it text and
        shows nothing."""
        tail = self._sent_tail
        for chunk in reversed(self.out):
            if chunk:
                tail = chunk[-1:]
                break
        if tail == b"<":
            self.out.append(b"<!---->")

    def _run(self, final: bool) -> None:
        buf, pos, n = self.buf, 0, len(self.buf)
        while pos < n:
            if self.state == DATA:
                if self.head_done and self._html_mode() and not self.uncertain_mode:
                    if self.depth == 0 and inert.first_party(self.registry, self.base, self.plan.base_url):
                        end = inert.html_end(buf, pos)  # also passes tags that reach no other host
                    else:
                        end = hs.boring_html_end(buf, pos)
                else:
                    end = hs.BORING_TEXT.match(buf, pos).end()
                if end > pos:
                    self.out.append(buf[pos:end])
                    pos = end
                    if pos >= n:
                        break
                new = self._markup(buf, pos, final)
            elif self.state == STREAM:
                new = self._stream(buf, pos, final)
            elif self.state == UNIT:
                new = self._unit(buf, pos, final)
            else:  # PLAINTEXT: nothing after <plaintext> is markup
                self.out.append(buf[pos:])
                new = n
            if new < 0:
                break
            pos = new
        self.buf = buf[pos:]

    def _html_mode(self) -> bool:
        return not self.foreign or self.foreign[-1] in HTML_INTEGRATION

    # -- at a "<" --------------------------------------------------------------------------------
    def _markup(self, buf: bytes, pos: int, final: bool) -> int:
        nxt = buf[pos + 1 : pos + 2]
        if not nxt:
            return self._text(buf, pos, 1, final)
        if nxt == b"!":
            if (
                len(buf) - pos < 9
                and not final
                and (b"<!--".startswith(buf[pos : pos + 4]) or b"<![CDATA[".startswith(buf[pos:]))
            ):
                return -1
            if buf.startswith(b"<!--", pos):
                return self._comment(buf, pos, final)
            if buf.startswith(b"<![CDATA[", pos) and (not self._html_mode() or self.uncertain_mode):
                return self._cdata(buf, pos, final)
            return self._start_stream(buf, pos, pos + 2, _Stream("bogus", True), final)
        if nxt == b"?":
            return self._start_stream(buf, pos, pos + 1, _Stream("bogus", True), final)
        if nxt == b"/":
            c = buf[pos + 2 : pos + 3]
            if not c:
                return self._text(buf, pos, 2, final)
            if c == b">":
                self.out.append(b"</>")
                return pos + 3
            if not c.isalpha():
                return self._start_stream(buf, pos, pos + 2, _Stream("bogus", True), final)
        elif not nxt.isalpha():
            return self._text(buf, pos, 1, final)
        m = hs.TAG.match(buf, pos)
        if m is None:
            return self._incomplete_tag(buf, pos, final)
        name = m.group(2).decode("ascii", "replace").lower()
        if m.group(1):
            return self._end_tag(buf, pos, m, name)
        return self._start_tag(buf, pos, m, name, final)

    def _text(self, buf: bytes, pos: int, size: int, final: bool) -> int:
        if not final:
            return -1
        self.out.append(buf[pos : pos + size])
        return pos + size

    def _incomplete_tag(self, buf: bytes, pos: int, final: bool) -> int:
        if final:
            self.out.append(buf[pos:])  # EOF in a tag: the browser drops it
            return len(buf)
        if len(buf) - pos <= self.plan.carry_over:
            return -1
        # Past the cap: follow the tag states as bytes stream by. Dropped when anything is refused.
        raw_name = buf[pos + 1 : pos + 64].lstrip(b"/")
        stop = hs._TAG_NAME_STOP.search(raw_name)
        name = raw_name[: stop.start() if stop else len(raw_name)].decode("ascii", "replace").lower()
        is_end = buf[pos + 1 : pos + 2] == b"/"
        then = "" if is_end else ("script" if name == "script" else name if name in RAWTEXT | {"noscript"} else "")
        keep = not self.refusing
        if not keep:
            self.outcome.uncertain += 1
            self._removed()
        return self._start_stream(buf, pos, pos + 2, _Stream("tag", keep, name=name, then=then), final)

    def _comment(self, buf: bytes, pos: int, final: bool) -> int:
        body = pos + 4
        if buf.startswith(b">", body) or buf.startswith(b"->", body):  # <!--> and <!--->
            end = body + (1 if buf[body : body + 1] == b">" else 2)
            self.out.append(buf[pos:end])
            return end
        if len(buf) < body + 2 and not final:
            return -1
        return self._start_stream(buf, pos, body, _Stream("comment", True), final)

    def _cdata(self, buf: bytes, pos: int, final: bool) -> int:
        end = buf.find(b"]]>", pos + 9)
        if end < 0:
            if not final and len(buf) - pos <= self.plan.carry_over:
                return -1
            end = len(buf) - 3
        end += 3
        unit = buf[pos:end]
        gt = unit.find(b">")  # read as HTML, "<![CDATA[" is a bogus comment ending at the first ">"
        refused, kept, clean = self._markup_view(unit[gt + 1 :], None)
        if self.refusing and (refused or not clean):
            self.outcome.stripped |= refused
            self.outcome.uncertain += 0 if refused else 1
            self._removed()
            return end
        self.outcome.kept |= kept
        self.out.append(unit)
        return end

    # -- streams: content copied or dropped until its end ------------------------------------------
    def _start_stream(self, buf: bytes, pos: int, body: int, st: _Stream, final: bool) -> int:
        if st.keep:
            self.out.append(buf[pos:body])
        self.stream, self.state = st, STREAM
        return body

    def _stream(self, buf: bytes, pos: int, final: bool) -> int:
        st = self.stream
        assert st is not None
        n = len(buf)
        if st.kind in ("comment", "bogus"):
            m = (hs.COMMENT_END if st.kind == "comment" else hs.BOGUS_END).search(buf, pos)
            end = m.end() if m else (n if final else max(pos, n - 3))
            done = m is not None or final
        elif st.kind == "tag":
            end, st.tag_state, resume = hs.tag_scan(buf, pos, st.tag_state)
            done = end >= 0 or final
            end = end if end >= 0 else (n if final else resume)
        else:  # raw text or script data: up to the end tag, which is read as a tag
            if st.kind == "script":
                idx, st.sub, resume = hs.script_end(buf, pos, st.sub)
            else:
                m = hs.RAWTEXT_END[st.name].search(buf, pos)
                idx = m.start() if m else -1
                resume = max(pos, n - len(st.name) - 3)
            if idx < 0:
                end, done = (n, True) if final else (resume, False)
            else:
                tag = hs.TAG.match(buf, idx)
                if tag is None and not final:
                    end, done = idx, False
                else:
                    end, done = (tag.end() if tag else n), True
        if st.keep:
            self.out.append(buf[pos:end])
        if done:
            self.stream, self.state = None, DATA
            if st.kind == "tag" and st.then:
                return self._continue_after_tag(end, st)
            return end
        return end if end > pos else -1

    def _continue_after_tag(self, end: int, st: _Stream) -> int:
        if st.then == "script":
            self.stream, self.state = _Stream("script", st.keep), STREAM
        elif st.then in RAWTEXT or st.then == "noscript":
            self.stream, self.state = _Stream("raw", st.keep, name=st.then), STREAM
        return end

    # -- tags ------------------------------------------------------------------------------------
    def _end_tag(self, buf: bytes, pos: int, m, name: str) -> int:
        raw = buf[pos : m.end()]
        if self.foreign and not (self.foreign[-1] in HTML_INTEGRATION and name not in self.foreign):
            if name in self.foreign or name + "+" in self.foreign:
                key = name if name in self.foreign else name + "+"
                del self.foreign[len(self.foreign) - 1 - self.foreign[::-1].index(key) :]
            else:  # "</p>", "</br>" break out in current browsers, not in older parsers; others may
                # close an HTML ancestor or be ignored: read what follows both ways until it settles
                self.uncertain_mode = True
        elif self.foreign and name in self.foreign:
            del self.foreign[len(self.foreign) - 1 - self.foreign[::-1].index(name) :]
        elif name == "select":
            self.in_select = False
        if name in ("body", "html") and not self.body_done:
            self._inject_body()
        self.out.append(raw)
        return m.end()

    def _break_out(self) -> None:
        while self.foreign and self.foreign[-1] not in HTML_INTEGRATION:
            self.foreign.pop()
        self.uncertain_mode = False

    def _start_tag(self, buf: bytes, pos: int, m, name: str, final: bool) -> int:
        end = m.end()
        raw_attrs = m.group(3)
        attrs = self.registry._attrs_cache.get(raw_attrs)  # a site's pages repeat their tags
        if attrs is None:
            attrs = hs.parse_attrs(raw_attrs)
            if len(raw_attrs) <= _CACHED_TAG_MAX:
                self.registry._attrs_cache.put(raw_attrs, attrs)
        self_closing = m.group(4).endswith(b"/")
        if not self.head_done and name not in ("html", "head"):
            self._inject_head()
        placeholder = self.in_select and name in ("input", "keygen", "textarea")
        if self.foreign and not self._html_mode():
            if name in BREAKOUT or (name == "font" and any(a[0] in (b"color", b"face", b"size") for a in attrs)):
                self._break_out()
                placeholder = True
            else:
                return self._foreign_start(buf, pos, m, name, attrs, self_closing, final)
        if name in ("svg", "math"):
            if not self_closing:
                self.foreign.append(name)
            return self._emit_tag(buf, pos, m, name, attrs)
        if name == "noscript":
            return self._begin_unit(buf, pos, _Unit("dual", name, end - pos, attrs, end - pos), final)
        if name in RAWTEXT or name == "script":
            if self.in_select and name != "script" or self.uncertain_mode:
                return self._begin_unit(buf, pos, _Unit("dual", name, end - pos, attrs, end - pos), final)
            if name == "script":
                return self._begin_unit(buf, pos, _Unit("script", name, end - pos, attrs, end - pos), final)
            if name == "style":
                return self._begin_unit(buf, pos, _Unit("style", name, end - pos, attrs, end - pos), final)
            # iframe, textarea, title, xmp, noembed, noframes: the content is inert; the tag decides
            out = self._decide_tag(buf, pos, m, name, attrs)
            self.stream, self.state = _Stream("raw", out is not None, name=name), STREAM
            if out is not None:
                self.out.append(out)
            else:
                self._removed()
            return end
        if name == "plaintext":
            self._emit_tag(buf, pos, m, name, attrs)
            self.state = PLAINTEXT
            return end
        if name == "select":
            self.in_select = True
        elif name == "base":
            return self._base_tag(buf, pos, m, attrs)
        if name == "input" and not self.outcome.form_page and asks_personal_data(attrs):
            self._form_found()
        result = self._emit_tag(buf, pos, m, name, attrs, placeholder)
        if name == "head" and not self.head_done:
            self._inject_head()
        if name == "body" and not self.head_done:
            self._inject_head()
        return result

    def _base_tag(self, buf: bytes, pos: int, m, attrs) -> int:
        """``<base>``: judged like any tag (its href on a refused vendor's host strips it: every
        relative URL of the page would go there). The first one the browser keeps with an href is
        the base later URLs resolve against, so it is read from what is sent, not what came."""
        out = self._decide_tag(buf, pos, m, "base", attrs)
        if out is None:
            self._removed()
            return m.end()
        self.out.append(out)
        if not self.base_set:
            if out != buf[pos : m.end()]:
                sent = hs.TAG.match(out)
                attrs = hs.parse_attrs(sent.group(3)) if sent else []
            href = self._first(attrs, b"href")
            if href is not None:
                self.base_set = True
                # Its own href resolves against the document's URL, never against another <base>.
                self.base = urls.parse(hs.attr_text(href, self.encoding), self.fallback_base) or self.base
        return m.end()

    def _form_found(self) -> None:
        """A form asks for personal data: from here on, tags that read forms are refused unless the
        visitor agreed to give that recipient personal data (the plan lists them). What ran before
        this point is why gate also remembers the path (proxy.py): the next view withholds them whole."""
        self.outcome.form_page = True
        withdrawn = self.allowed & self.plan.form_readers
        if withdrawn and self.plan.gating:
            self.allowed -= withdrawn
            self.plan = replace(self.plan, allowed=self.allowed)
            self.refusing = True
            self._context = (self.allowed, self.refusing, *self._context[2:])

    def _foreign_start(self, buf, pos, m, name, attrs, self_closing, final) -> int:
        end = m.end()
        if name in RAWTEXT or name in ("script", "noscript", "plaintext") and not self_closing:
            return self._begin_unit(buf, pos, _Unit("dual", name, end - pos, attrs, end - pos), final)
        if not self_closing:
            enc = (self._first(attrs, b"encoding") or b"").strip(b"\"' ").lower()
            ip = name == "annotation-xml" and enc in (b"text/html", b"application/xhtml+xml")
            self.foreign.append(name + "+" if ip else name)
        return self._emit_tag(buf, pos, m, name, attrs)

    def _emit_tag(self, buf: bytes, pos: int, m, name: str, attrs, placeholder: bool = False) -> int:
        out = self._decide_tag(buf, pos, m, name, attrs)
        if out is not None:
            self.out.append(out)
        elif placeholder:
            # The element also closed foreign content (or a <select>): a bare one, which loads
            # nothing, keeps the parse of everything after it as the upstream wrote it.
            self.out.append(b"<" + name.encode() + b" data-gate>")
        else:
            self._removed()
        return m.end()

    @staticmethod
    def _first(attrs, key: bytes) -> bytes | None:
        for a in attrs:
            if a[0] == key:
                return a[1] if a[1] is not None else b""
        return None

    # -- decisions on one start tag ------------------------------------------------------------------
    def _remembered(self, key: tuple, compute: Callable[[], T]) -> T:
        """``compute()``, remembered per registry (a site sends the same tags on every page) under
        ``key``, which holds the element's bytes and what else the decision reads (self._context).
        The base URL joins the key only as far as a URL was resolved against it: not at all for an
        absolute https:// URL, its scheme for //host, its origin for /path, all of it otherwise
        (urls.base_read). What ``compute`` adds to the outcome is replayed on every later hit."""
        cache = self.registry._tag_cache
        hit = cache.get(key)
        if hit.__class__ is _ByBase:
            self._base_read = max(self._base_read, hit.read)
            hit = cache.get(self._with_base(key, hit.read))
        if hit is not None:
            value, delta = hit
            if delta is not None:
                self.outcome.merge(delta)
            return value
        outer, outer_read = self.outcome, self._base_read
        self.outcome, self._base_read = Outcome(), urls.READS_NOTHING
        try:
            value = compute()
        finally:
            delta, read = self.outcome, self._base_read
            self.outcome, self._base_read = outer, max(outer_read, read)
        outer.merge(delta)
        entry = (value, None if delta == _NOTHING else delta)
        if read:
            cache.put(key, _BY_BASE[read])
            cache.put(self._with_base(key, read), entry)
        else:
            cache.put(key, entry)
        return value

    def _with_base(self, key: tuple, read: int) -> tuple:
        base = self.base
        if read == urls.READS_SCHEME:
            return key, base.scheme
        if read == urls.READS_ORIGIN:
            return key, base.scheme, base.host
        return key, base

    def _reads_base(self, text: str) -> None:
        """Note that ``text`` is about to be resolved against self.base (see _remembered)."""
        self._base_read = max(self._base_read, urls.base_read(text, self.base))

    def _decide_tag(self, buf: bytes, pos: int, m, name: str, attrs) -> bytes | None:
        """The tag's bytes as sent: unchanged, without some attributes, or None (element stripped)."""
        raw = buf[pos : m.end()]
        attr_base = m.start(3) - m.start()
        if len(raw) > _CACHED_TAG_MAX:
            return self._decide_tag_now(raw, attr_base, name, attrs)
        key = ("tag", raw, name, self._context, bool(self.foreign) and not self._html_mode())
        return self._remembered(key, lambda: self._decide_tag_now(raw, attr_base, name, attrs))

    def _decide_tag_now(self, raw: bytes, attr_base: int, name: str, attrs) -> bytes | None:
        remove: list[tuple[int, int]] = []
        replace_at: list[tuple[int, int, bytes]] = []
        seen: set[bytes] = set()
        strip = False
        for key, value, a_start, a_end in attrs:
            if key in seen:
                continue  # the first of duplicate attributes wins; the rest are dropped by the parser
            seen.add(key)
            tags, primary = self._attr_tags(name, key, value, attrs)
            unsure, personal = self._unsure, self._doc_personal  # from a frame's data: document
            if unsure or personal:
                self._unsure, self._doc_personal = False, frozenset()
            if unsure and self.refusing and not personal:  # it could not be read to its end
                self.outcome.uncertain += 1
                if primary:
                    strip = True
                else:
                    remove.append((a_start, a_end))
                continue
            if key == b"srcdoc" and value is not None:
                if self.depth >= MAX_DEPTH:  # a document nested deeper than gate reads: fail closed
                    if self.refusing and name == "iframe":  # the one element whose srcdoc is a document
                        self.outcome.uncertain += 1
                        strip = True
                    continue
                new = self._srcdoc(value)
                if new is not None:
                    replace_at.append((a_start, a_end, b' srcdoc="' + new + b'"'))
                continue
            if not tags:
                continue
            refused = (tags - self.allowed) | personal
            if refused:
                self.outcome.stripped |= refused - {UNDECLARED}
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

    def _attr_tags(self, name: str, key: bytes, value: bytes | None, attrs) -> tuple[frozenset[str], bool]:
        """Tags an attribute would contact or run, and whether it is the element's loading attribute."""
        if value is None:
            return frozenset(), False
        if key.startswith(b"on"):
            return self._text_tags(hs.attr_text(value, self.encoding)), False
        if key == b"style":
            return self._css_tags(hs.attr_text(value, self.encoding)), False
        text = hs.attr_text(value, self.encoding)
        if key == b"href" and name == "base":
            return self._url_tags(text, name), True
        if key in (b"src", b"data", b"poster", b"background", b"codebase", b"xlink:href") or (
            key == b"href"
            and (name in ("link", "image", "use", "feimage", "script") or self.foreign and not self._html_mode())
        ):
            # a stylesheet or icon <link> is not one of the loads undeclared hosts are stripped from
            element = "link-sheet" if name == "link" and not _is_hint(attrs, self.encoding) else name
            return self._url_tags(text, element), name in VOID_STRIP | RAW_STRIP | {"script"}
        if key == b"srcset":
            found: set[str] = set()
            for cand in text.split(","):
                found |= self._url_tags(cand.strip().split(" ")[0] if cand.strip() else "", name)
            return frozenset(found), name in VOID_STRIP
        if key == b"ping":
            found = set()
            for u in text.split():
                found |= self._url_tags(u, "ping")
            return frozenset(found), False
        if key == b"content" and name == "meta":
            equiv = hs.attr_text(self._first(attrs, b"http-equiv"), self.encoding).strip().lower()
            if equiv == "refresh" and "url" in text.lower():
                target = text.split("=", 1)[1] if "=" in text else ""
                return self._url_tags(target.strip().strip("'\""), name), True
            return frozenset(), False
        if key in (b"href", b"action", b"formaction"):
            self._reads_base(text)
            url = urls.parse(text, self.base)
            if url is not None and url.scheme == "javascript":
                return self._text_tags(unquote_to_bytes(url.path).decode("utf-8", "replace")), False
        return frozenset(), False

    def _url_tags(self, text: str, element: str) -> frozenset[str]:
        self._reads_base(text)
        url = urls.parse(text, self.base)
        if url is None:
            return frozenset()
        if url.scheme == "javascript":
            return self._text_tags(unquote_to_bytes(url.path).decode("utf-8", "replace"))
        if url.scheme == "data":
            text = _data_url_text(url.path)
            found = self._text_tags(text)
            if element in DOCUMENT_ELEMENTS and "<" in text:
                found |= self._document_tags(text)
            return found
        tags = self.registry.tags_for_url(url)
        if not tags and element in UNDECLARED_ELEMENTS and self.registry.is_undeclared(url, self.plan.base_url.host):
            self.outcome.undeclared.add(url.host)
            if self.registry.strip_undeclared:
                return _UNDECLARED_TAGS
        return tags

    def _document_tags(self, doc: str) -> frozenset[str]:
        """The tags a document loaded in a frame would load (a data: URL's), read as gate reads a page.
        Where it cannot be read to its end (nested too deep, uncertain inside) self._unsure is set."""
        if self.depth >= MAX_DEPTH:
            self._unsure = True
            return frozenset()
        sub = self._nested("utf-8", document=True)
        sub.feed(doc.encode("utf-8", "surrogatepass"))
        sub.close()
        self._base_read = max(self._base_read, sub._base_read)
        if sub.outcome.uncertain:
            self._unsure = True
        if sub.outcome.personal_data:  # the document cannot be rewritten in place: the frame goes
            self.outcome.personal_data |= sub.outcome.personal_data
            if not self.plan.personal_data_allowed:
                self._doc_personal = frozenset(sub.outcome.personal_data)
        return frozenset(sub.outcome.stripped | sub.outcome.kept)

    def _css_tags(self, css: str) -> frozenset[str]:
        found: set[str] = set()
        for u in hs.css_urls(css):
            found |= self._url_tags(u, "style")
        return frozenset(found)

    def _nested(self, encoding: str, foreign: list[str] | None = None, document: bool = False) -> PageRewriter:
        """A reader for a document or fragment inside this page (srcdoc, a frame's data: document,
        the other reading of an element): nothing injected, one level deeper, against this base.
        A ``document`` has a base of its own: its first <base href> rules its URLs (a fragment of
        this page follows this page's)."""
        return PageRewriter(
            replace(self.plan, head_html="", body_html=""),
            encoding,
            fragment=True,
            foreign=foreign,
            depth=self.depth + 1,
            base=self.base,
            base_set=False if document else self.base_set,
        )

    def _text_tags(self, text: str) -> frozenset[str]:
        return self.registry.tags_in_text(text) if text else frozenset()

    def _srcdoc(self, value: bytes) -> bytes | None:
        """Gate an iframe's srcdoc document; the new escaped value, or None when unchanged."""
        doc = hs.attr_text(value, self.encoding)
        sub = self._nested("utf-8", document=True)
        out = sub.feed(doc.encode("utf-8", "surrogatepass")) + sub.close()
        self.outcome.merge(sub.outcome)
        self._base_read = max(self._base_read, sub._base_read)
        if out == doc.encode("utf-8", "surrogatepass"):
            return None
        return hs.escape_attr(out.decode("utf-8", "replace")).encode(self.encoding, "xmlcharrefreplace")

    # -- units: elements held whole -----------------------------------------------------------------
    def _begin_unit(self, buf: bytes, pos: int, unit: _Unit, final: bool) -> int:
        self.unit, self.state = unit, UNIT
        return self._unit(buf, pos, final)

    def _unit(self, buf: bytes, pos: int, final: bool) -> int:
        u = self.unit
        assert u is not None
        start = pos + u.scan
        if u.kind == "script" or (u.kind == "dual" and u.name == "script"):
            idx, u.sub, resume = hs.script_end(buf, start, u.sub)
        else:
            pattern = hs.RAWTEXT_END.get(u.name)  # none for plaintext: it runs to the end
            mm = pattern.search(buf, start) if pattern else None
            idx = mm.start() if mm else -1
            resume = max(start, len(buf) - len(u.name) - 3)
        end_tag = hs.TAG.match(buf, idx) if idx >= 0 else None
        if end_tag is None:
            u.scan = resume - pos
            if final:
                return self._finish_unit(buf, pos, len(buf), len(buf), u)
            if len(buf) - pos > self.plan.carry_over:
                return self._oversized_unit(buf, pos, u, idx if idx >= 0 else resume)
            return -1
        return self._finish_unit(buf, pos, idx, end_tag.end(), u)

    def _oversized_unit(self, buf: bytes, pos: int, u: _Unit, upto: int) -> int:
        """Past the cap: stream the rest. Dropped (and counted) when anything is refused."""
        keep = not self.refusing
        if not keep:
            self.outcome.uncertain += 1
            self._removed()
        else:
            self.out.append(buf[pos:upto])
        self.unit = None
        if u.kind == "script" or u.name == "script":
            self.stream = _Stream("script", keep, sub=u.sub)
        else:
            self.stream = _Stream("raw", keep, name=u.name if u.name in hs.RAWTEXT_END else "title")
        self.state = STREAM
        return upto

    def _finish_unit(self, buf: bytes, pos: int, content_end: int, end: int, u: _Unit) -> int:
        self.unit, self.state = None, DATA
        if end - pos > _CACHED_TAG_MAX:
            out = self._unit_out(buf, pos, content_end, end, u)
        else:
            key = ("unit", buf[pos:end], u.tag_end, content_end - pos, u.name, u.kind, self._context)
            if u.kind == "dual":  # the other reading starts from the open elements
                key += (tuple(self.foreign), self.in_select, self.uncertain_mode)
            out = self._remembered(key, lambda: self._unit_out(buf, pos, content_end, end, u))
        if out is not None:
            self.out.append(out)
        else:
            self._removed()
        return end

    def _unit_out(self, buf: bytes, pos: int, content_end: int, end: int, u: _Unit) -> bytes | None:
        """The element as sent, or None when it is stripped."""
        content = buf[pos + u.tag_end : content_end]
        whole = buf[pos:end]
        tags: set[str] = set()
        personal: set[str] = set()  # tags this script would send personal data to, when that is not allowed
        uncertain = False
        if u.name == "script":  # its src is read with the other attributes, by _decide_tag
            typ = hs.attr_text(self._first(u.attrs, b"type"), self.encoding).strip().lower()
            if typ not in SCRIPT_DATA_TYPES and content.strip():
                found, sends, unsure = self.registry.judge_script(content, self.encoding, typ == "module")
                tags |= found
                uncertain = unsure  # it names a vendor but could not be read to its end
                if sends:
                    self.outcome.personal_data |= found
                    if not self.plan.personal_data_allowed:
                        personal = set(found)
        elif u.name == "style":
            tags |= self._css_tags(content.decode(self.encoding, "replace"))
        if u.kind == "dual":
            push = None if u.name == "noscript" else u.name
            refused_view, kept_view, clean = self._markup_view(content, push)
            tags |= refused_view | kept_view
            uncertain = uncertain or not clean
        tag_out = self._decide_tag(buf, pos, hs.TAG.match(buf, pos), u.name, u.attrs)
        refused = (tags - self.allowed) | personal
        if refused or tag_out is None or (uncertain and self.refusing):
            self.outcome.stripped |= refused
            if uncertain and tag_out is not None and (not refused or u.name == "script"):
                self.outcome.uncertain += 1
            return None
        self.outcome.kept |= tags
        return tag_out + whole[u.tag_end :]

    def _markup_view(self, content: bytes, push: str | None) -> tuple[set[str], set[str], bool]:
        """Read ``content`` as markup (the other reading): tags refused there, tags kept, and whether
        that reading ends where ours does (in the data state)."""
        if b"<" not in content:
            return set(), set(), True
        if self.depth >= MAX_DEPTH:
            return set(), set(), False
        foreign = self.foreign + [push] if push and self.foreign else list(self.foreign)
        sub = self._nested(self.encoding, foreign)
        sub.feed(content)
        clean = sub.ended_in_data and sub.unit is None
        sub.close()
        self._base_read = max(self._base_read, sub._base_read)
        refused = sub.outcome.stripped
        return set(refused), set(sub.outcome.kept), clean and not sub.outcome.uncertain

    # -- injection ---------------------------------------------------------------------------------
    def _inject_head(self) -> None:
        self.head_done = True
        if self.plan.head_html:
            self.out.append(self.plan.head_html.encode(self.encoding, "xmlcharrefreplace"))

    def _inject_body(self) -> None:
        self.body_done = True
        if self.plan.body_html:
            self.out.append(self.plan.body_html.encode(self.encoding, "xmlcharrefreplace"))


# Loads to a third party that no vendor and no allow_hosts entry names: scripts, frames, pixels,
# beacons (ping) and connection hints. Such a URL counts as the pseudo-tag UNDECLARED, never allowed.
UNDECLARED = "undeclared"
_UNDECLARED_TAGS = frozenset({UNDECLARED})
UNDECLARED_ELEMENTS = frozenset(
    {"script", "iframe", "frame", "fencedframe", "portal", "img", "image", "embed", "object", "link", "ping"}
)
_HINTS = frozenset({"preconnect", "dns-prefetch", "preload", "prefetch", "modulepreload", "prerender"})


def _is_hint(attrs, encoding: str) -> bool:
    for a in attrs:
        if a[0] == b"rel":
            return bool(_HINTS & set(hs.attr_text(a[1] or b"", encoding).lower().split()))
    return False


_PERSONAL_TYPES = (b"email", b"tel")
_PERSONAL_WORDS = (b"name", b"mail", b"tel", b"phone")
_NOT_TYPED = (b"hidden", b"submit", b"button", b"image", b"reset", b"checkbox", b"radio", b"file")


def asks_personal_data(attrs) -> bool:
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


def _data_url_text(body: str) -> str:
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


@per_consent
def stub_script(registry: Registry, allowed: frozenset[str]) -> str:
    """No-op stand-ins for the globals of stripped tags, so the page's own calls don't throw.
    Only for globals that no allowed tag provides (a stub would stop a real loader: fbq checks it)."""
    provided = {g for t in registry.tags.values() if t.id in allowed for g in (*t.globals, *t.queues, *t.objects)}
    funcs = sorted({g for t in registry.tags.values() for g in t.globals} - provided)
    queues = sorted({q for t in registry.tags.values() for q in t.queues} - provided)
    objects = sorted({o for t in registry.tags.values() for o in t.objects} - provided)
    if not (funcs or queues or objects):
        return ""
    parts = ["var w=window,n=function(){};"]
    parts += [f"w.{f}=w.{f}||n;" for f in funcs]
    parts += [f"w.{q}=w.{q}||[];" for q in queues]
    parts += [f"w.{o}=w.{o}||new Proxy({{}},{{get:function(){{return n}}}});" for o in objects]
    return "<script data-gate>" + "".join(parts) + "</script>"
