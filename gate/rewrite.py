"""Per-response gate: reads the page as a browser would, keeps or strips each vendor tag, injects
the stubs and the banner. feed(bytes) -> bytes, close() -> bytes; every byte outside a removed tag
and the injected elements is the upstream's.

The parts, one job each: gate.htmlstream reads the bytes (tags, attributes, where raw text, script
data and comments end); gate.treestate knows what the tree builder has open (foreign content,
<select>, <template>); gate.verdict judges a tag or an element (pure); gate.decisions remembers the
verdicts per registry. PageRewriter wires them to the byte stream: the loop, start and end tags and
their verdicts are here; the rest of the reader is in modules named for it, bound into the class
(the per-tag path calls them by name): gate.units (elements held whole), gate.streams (content
copied or dropped to its end), gate.nested (documents in the page, other readings), gate.inject
(what gate adds; <base> and personal-data forms).

How it reads:
- Text and tags that can neither load nor change tokenization are skipped by one regex (in C).
- Everything else is read as a tag, with attributes decoded as the attribute states do. Every start
  tag gets its verdict in one place, PageRewriter._decide_tag.
- Elements whose content decides (script, style, noscript) are held until their end tag, up to
  ``carry_over`` bytes; past that, and wherever the browser's reading could differ from ours, the
  element is stripped when anything is refused ("uncertain", counted): fail closed, never read past.
- noscript is read both ways (scripting on: raw text; off: markup). So are raw-text elements where the
  tree builder may not switch the tokenizer (foreign content, <select>). Removing an element whose
  two readings diverge makes them agree again on everything after it.
- Removing an element never lets what was around it join into new markup (_cut).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import decisions as decisions_
from . import htmlstream as hs
from . import inert, inject, nested, streams, treestate, units, urls
from .htmlstream import State, StreamKind, UnitKind
from .vendors import Registry
from .verdict import MAX_DEPTH, NOTHING, Judging, Outcome, Verdict, asks_personal_data, judge

__all__ = ["MAX_DEPTH", "Outcome", "PagePlan", "PageRewriter", "asks_personal_data"]

RAWTEXT = frozenset({"style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"})
# Start tags that _start_tag does more with than judge them (every other one goes straight to _emit_tag).
_SPECIAL_START = RAWTEXT | {
    "noscript",
    "script",
    "svg",
    "math",
    "plaintext",
    "select",
    "template",
    "base",
    "input",
    "head",
    "body",
}
# An empty comment: put where an element was cut out right after a "<" (see _cut).
_SEPARATOR = b"<!---->"


@dataclass(frozen=True)
class PagePlan:
    """What one response's rewrite needs, fixed before the first byte."""

    registry: Registry
    allowed: frozenset[str]  # tag ids let through for this visitor on this site
    base_url: urls.URL  # the page's public URL, for relative URLs
    head_html: str = ""  # injected first in <head> (stubs, consent defaults)
    body_html: str = ""  # injected before </body> (banner or settings link, footer link)
    carry_over: int = 256 * 1024
    personal_data_allowed: bool = False  # False: a script sending hashed e-mail/phone is stripped
    form_readers: frozenset[str] = frozenset()  # withdrawn from allowed once a personal-data form is read


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
        decisions: decisions_.Decisions | None = None,
    ) -> None:
        self.plan, self.encoding, self.registry = plan, encoding, plan.registry
        self.decisions = decisions if decisions is not None else decisions_.of(plan.registry)
        self.allowed = plan.allowed
        self.refusing = not plan.allowed.issuperset(plan.registry.tags) or plan.registry.strip_undeclared
        self.outcome = Outcome()
        self.fragment, self.depth = fragment, depth
        self.buf = b""
        self.out: list[bytes] = []
        self.state = State.DATA
        self.stream: hs.Stream | None = None
        self.unit: units.Unit | None = None
        self.tree = treestate.OpenElements(foreign or ())
        self.base = base or plan.base_url
        self.fallback_base = self.base  # what a <base href> of this document resolves against
        self._inert_base: urls.URL | None = None  # the base _inert_ok was worked out for (see _run)
        self._inert_ok = False
        self.base_set = base is not None if base_set is None else base_set
        self.head_done = fragment or not plan.head_html
        self.body_done = fragment or not plan.body_html
        self.base_read = urls.READS_NOTHING  # how much of self.base any verdict here read
        self._sent_tail = b""  # the last byte already returned by feed()
        self._judging_last: Judging | None = None  # the last one built (see _judging)
        # What a verdict reads besides the element's bytes and the base URL (see gate.decisions); the
        # page's host decides which hosts are third parties.
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
        self.buf = self.buf + data if self.buf else data
        self._run(final=False)
        return self._flush()

    def close(self) -> bytes:
        self._run(final=True)
        if self.buf:  # whatever could not be read is not a tag a browser acts on
            self.out.append(self.buf)
            self.buf = b""
        if not self.head_done:
            self._inject_head()
        if not self.body_done:
            self._inject_body()
        return self._flush()

    # -- the loop --------------------------------------------------------------------------------
    def _flush(self) -> bytes:
        out = b"".join(self.out)
        self.out = []
        if out:
            self._sent_tail = out[-1:]
        return out

    def _cut(self) -> None:
        """An element was removed here. A "<" just before it was text only because the element's own
        "<" followed it: with the element gone it would open a tag (or a comment) with whatever
        follows ("<" "<script…></script>" "img src=…>" would become a live <img>; "<" "<img…>" "!--"
        a comment hiding the rest). An empty comment after that "<" keeps it text and shows nothing."""
        tail = self._sent_tail
        for chunk in reversed(self.out):
            if chunk:
                tail = chunk[-1:]
                break
        if tail == b"<":
            self.out.append(_SEPARATOR)

    def _run(self, final: bool) -> None:
        buf, pos, n = self.buf, 0, len(self.buf)
        tree = self.tree
        while pos < n:
            state = self.state
            if state == State.DATA:
                # (in a MathML text integration point <mglyph> and <malignmark> are foreign: read every tag)
                if self.head_done and tree.html_mode and not tree.uncertain and not tree.math_text:
                    if self._inert_base is not self.base:  # once per base, not once per stretch of text
                        self._inert_base = self.base
                        self._inert_ok = self.depth == 0 and inert.first_party(
                            self.registry, self.base, self.plan.base_url
                        )
                    if self._inert_ok:
                        end = inert.html_end(buf, pos)  # also passes tags that reach no other host (gate/inert.py)
                    else:
                        end = hs.boring_html_end(buf, pos)
                else:
                    end = hs.BORING_TEXT.match(buf, pos).end()  # type: ignore[union-attr]  # always matches
                if end > pos:
                    self.out.append(buf[pos:end])
                    pos = end
                    if pos >= n:
                        break
                new = self._markup(buf, pos, final)
            elif state == State.STREAM:
                new = self._stream(buf, pos, final)
            elif state == State.UNIT:
                new = self._unit(buf, pos, final)
            else:  # PLAINTEXT: nothing after <plaintext> is markup
                self.out.append(buf[pos:])
                new = n
            if new < 0:
                break
            pos = new
        self.buf = buf[pos:]

    # -- at a "<" --------------------------------------------------------------------------------
    def _markup(self, buf: bytes, pos: int, final: bool) -> int:
        tag = hs.read_tag(buf, pos)  # most stops are at a whole tag
        if tag is not None:
            if tag.closing:
                return self._end_tag(buf, tag)
            return self._start_tag(buf, tag, final)
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
            if buf.startswith(b"<![CDATA[", pos) and (not self.tree.html_mode or self.tree.uncertain):
                return self._cdata(buf, pos, final)
            return self._start_stream(buf, pos, pos + 2, hs.Stream(StreamKind.BOGUS, True))
        if nxt == b"?":
            return self._start_stream(buf, pos, pos + 1, hs.Stream(StreamKind.BOGUS, True))
        if nxt == b"/":
            c = buf[pos + 2 : pos + 3]
            if not c:
                return self._text(buf, pos, 2, final)
            if c == b">":
                self.out.append(b"</>")
                return pos + 3
            if not c.isalpha():
                return self._start_stream(buf, pos, pos + 2, hs.Stream(StreamKind.BOGUS, True))
        elif not nxt.isalpha():
            return self._text(buf, pos, 1, final)
        return self._incomplete_tag(buf, pos, final)  # "<" and a letter, or "</" and one: no whole tag yet

    # -- tags ------------------------------------------------------------------------------------
    def _end_tag(self, buf: bytes, tag: hs.Tag) -> int:
        self.tree.close(tag.name)
        if tag.name in ("body", "html") and not self.body_done:
            self._inject_body()
        self.out.append(buf[tag.start : tag.end])
        return tag.end

    def _start_tag(self, buf: bytes, tag: hs.Tag, final: bool) -> int:
        name, tree = tag.name, self.tree
        attrs = self.decisions.attributes(tag.raw_attrs)  # a site's pages repeat their tags
        if not self.head_done and name not in ("html", "head"):
            self._inject_head()
        placeholder = tree.in_select and name in ("input", "keygen", "textarea")
        if tree.foreign:  # (outside foreign content every start tag is read as HTML)
            reading = tree.start(name, attrs)
            if reading == treestate.FOREIGN:
                return self._foreign_start(buf, tag, attrs, final)
            if reading == treestate.BROKE_OUT:
                placeholder = True
        if name not in _SPECIAL_START:  # judged by its attributes alone
            return self._emit_tag(buf, tag, attrs, placeholder)
        if name in ("svg", "math"):
            if not tag.self_closing:
                tree.open_root(name)
            return self._emit_tag(buf, tag, attrs)
        if name == "noscript":
            return self._begin_unit(buf, tag, UnitKind.DUAL, attrs, final)
        if name in RAWTEXT or name == "script":
            if tree.in_select and name != "script" or tree.uncertain:
                return self._begin_unit(buf, tag, UnitKind.DUAL, attrs, final)
            if name == "script":
                return self._begin_unit(buf, tag, UnitKind.SCRIPT, attrs, final)
            if name == "style":
                return self._begin_unit(buf, tag, UnitKind.STYLE, attrs, final)
            # iframe, textarea, title, xmp, noembed, noframes: the content is inert; the tag decides
            out = self._decided(self._decide_tag(buf, tag, attrs))
            self.stream, self.state = hs.Stream(StreamKind.RAW, out is not None, name=name), State.STREAM
            if out is not None:
                self.out.append(out)
            else:
                self._cut()
            return tag.end
        if name == "plaintext":
            self._emit_tag(buf, tag, attrs)
            self.state = State.PLAINTEXT
            return tag.end
        if name == "select":
            tree.in_select = True
        elif name == "template":
            tree.templates += 1
        elif name == "base":
            return self._base_tag(buf, tag, attrs)
        if name == "input" and not self.outcome.form_page and asks_personal_data(attrs):
            self._form_found()
        end = self._emit_tag(buf, tag, attrs, placeholder)
        if name in ("head", "body") and not self.head_done:
            self._inject_head()
        return end

    def _foreign_start(self, buf: bytes, tag: hs.Tag, attrs: tuple[hs.Attr, ...], final: bool) -> int:
        name = tag.name
        if name in RAWTEXT or name in ("script", "noscript", "plaintext") and not tag.self_closing:
            return self._begin_unit(buf, tag, UnitKind.DUAL, attrs, final)
        if not tag.self_closing:
            self.tree.open_foreign(name, attrs)
        return self._emit_tag(buf, tag, attrs)

    def _emit_tag(self, buf: bytes, tag: hs.Tag, attrs: tuple[hs.Attr, ...], placeholder: bool = False) -> int:
        out = self._decided(self._decide_tag(buf, tag, attrs))
        if out is not None:
            self.out.append(out)
        elif placeholder:
            # The element also closed foreign content (or a <select>): a bare one, which loads
            # nothing, keeps the parse of everything after it as the upstream wrote it.
            self.out.append(b"<" + tag.name.encode() + b" data-gate>")
        else:
            self._cut()
        return tag.end

    # -- verdicts ----------------------------------------------------------------------------------
    def _decide_tag(self, buf: bytes, tag: hs.Tag, attrs: tuple[hs.Attr, ...]) -> Verdict:
        """The verdict on one start tag: every start tag's decision is made here (remembered per
        registry, see gate.decisions), whether the tag stands alone or opens an element held whole."""
        raw = buf[tag.start : tag.end]
        in_foreign = self.tree.in_foreign
        if len(raw) > decisions_.CACHED_TAG_MAX:
            return judge(raw, tag.attrs_at - tag.start, tag.name, attrs, self._judging(in_foreign))
        # (the name is not in the key: the bytes spell it)
        key = ("tag", raw, self._context, in_foreign)
        decisions, base = self.decisions, self.base
        verdict = decisions.recall(key, base)
        if verdict is not None:
            return verdict
        read = decisions.base_noted(key)
        verdict = judge(raw, tag.attrs_at - tag.start, tag.name, attrs, self._judging(in_foreign))
        return decisions.remember(key, base, verdict, read)

    def _decided(self, verdict: Verdict) -> bytes | None:
        """Apply a verdict: what it found joins the page's outcome; what is sent."""
        out, outcome, base_read = verdict
        if outcome is not NOTHING:
            self.outcome.merge(outcome)
        if base_read > self.base_read:
            self.base_read = base_read
        return out

    def _judging(self, in_foreign: bool) -> Judging:
        """What the judge reads besides the element (built again only when something in it changed:
        the base, the tags allowed, foreign content)."""
        ctx = self._judging_last
        if (
            ctx is not None
            and ctx.base is self.base
            and ctx.allowed is self.allowed
            and ctx.refusing is self.refusing
            and ctx.foreign is in_foreign
        ):
            return ctx
        plan = self.plan
        ctx = self._judging_last = Judging(
            self.registry,
            self.allowed,
            self.refusing,
            self.encoding,
            self.depth,
            plan.personal_data_allowed,
            plan.base_url.host,
            self.base,
            in_foreign,
            self,
        )
        return ctx

    # -- the rest of the reader, each in the module named for it (bound here: called by name above) --
    # Elements held whole: script, style, noscript (gate/units.py).
    _begin_unit = units.begin
    _unit = units.step
    # Comments, bogus comments, raw text, tags past the cap: copied or dropped to their end (gate/streams.py).
    _start_stream = streams.start
    _stream = streams.step
    _comment = streams.comment
    _incomplete_tag = streams.incomplete_tag
    _text = streams.text
    # Documents inside the page and other readings (gate/nested.py); read_* make this a verdict.Reader.
    read_document = nested.read_document
    read_fragment = nested.read_fragment
    _cdata = nested.cdata
    # What gate adds, and the start tags that change the rest of the reading (gate/inject.py).
    _inject_head = inject.inject_head
    _inject_body = inject.inject_body
    _base_tag = inject.base_tag
    _form_found = inject.form_found
