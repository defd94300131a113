"""Per-response gate: reads the page as a browser would, keeps or strips each vendor tag, injects
the stubs and the banner. feed(bytes) -> bytes, close() -> bytes; every byte outside a removed tag
and the injected elements is the upstream's.

The parts, one job each: gate.htmlstream reads the bytes (tags, attributes, where raw text, script
data and comments end); gate.treestate knows what the tree builder has open (foreign content,
<select>, <template>); gate.verdict judges a tag or an element (pure); gate.decisions remembers the
verdicts per registry. PageRewriter wires them to the byte stream and injects gate's markup.

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

from dataclasses import dataclass, replace

from . import decisions as decisions_
from . import htmlstream as hs
from . import inert, treestate, urls
from .htmlstream import State, StreamKind, UnitKind
from .vendors import Registry, per_consent
from .verdict import (
    MAX_DEPTH,
    NOTHING,
    Judging,
    Outcome,
    Reading,
    Verdict,
    asks_personal_data,
    element,
    judge,
    judge_content,
)

__all__ = ["MAX_DEPTH", "Outcome", "PagePlan", "PageRewriter", "asks_personal_data", "stub_script"]

RAWTEXT = frozenset({"style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"})
_RAW_OR_NOSCRIPT = RAWTEXT | {"noscript"}
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
    gating: bool = True  # False: pass through untouched (benchmark baseline, bench/serve.py)
    personal_data_allowed: bool = False  # False: a script sending hashed e-mail/phone is stripped
    form_readers: frozenset[str] = frozenset()  # withdrawn from allowed once a personal-data form is read


@dataclass
class _Unit:
    """An element held whole until its end tag: offsets are relative to the unit's first byte."""

    kind: UnitKind
    name: str
    tag_end: int
    attrs: tuple[hs.Attr, ...]
    scan: int
    sub: int = hs.SCRIPT_NORMAL


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
        self.refusing = plan.gating and (bool(set(plan.registry.tags) - plan.allowed) or plan.registry.strip_undeclared)
        self.outcome = Outcome()
        self.fragment, self.depth = fragment, depth
        self.buf = b""
        self.out: list[bytes] = []
        self.state = State.DATA
        self.stream: hs.Stream | None = None
        self.unit: _Unit | None = None
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
        return self.state == State.DATA and not self.buf

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
        tag = hs.read_tag(buf, pos)
        if tag is None:
            return self._incomplete_tag(buf, pos, final)
        if tag.closing:
            return self._end_tag(buf, tag)
        return self._start_tag(buf, tag, final)

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
        name = hs.tag_name(buf[pos + 1 : pos + 64].lstrip(b"/"))
        is_end = buf[pos + 1 : pos + 2] == b"/"
        then = "" if is_end else (name if name == "script" or name in _RAW_OR_NOSCRIPT else "")
        keep = not self.refusing
        if not keep:
            self.outcome.uncertain += 1
            self._cut()
        return self._start_stream(buf, pos, pos + 2, hs.Stream(StreamKind.TAG, keep, name=name, then=then))

    def _comment(self, buf: bytes, pos: int, final: bool) -> int:
        body = pos + 4
        if buf.startswith(b">", body) or buf.startswith(b"->", body):  # <!--> and <!--->
            end = body + (1 if buf[body : body + 1] == b">" else 2)
            self.out.append(buf[pos:end])
            return end
        if len(buf) < body + 2 and not final:
            return -1
        return self._start_stream(buf, pos, body, hs.Stream(StreamKind.COMMENT, True))

    def _cdata(self, buf: bytes, pos: int, final: bool) -> int:
        end = buf.find(b"]]>", pos + 9)
        if end < 0:
            if not final and len(buf) - pos <= self.plan.carry_over:
                return -1
            end = len(buf) - 3
        end += 3
        unit = buf[pos:end]
        gt = unit.find(b">")  # read as HTML, "<![CDATA[" is a bogus comment ending at the first ">"
        refused, kept, clean = self._other_reading(unit[gt + 1 :])
        if self.refusing and (refused or not clean):
            self.outcome.stripped |= refused
            self.outcome.uncertain += 0 if refused else 1
            self._cut()
            return end
        self.outcome.kept |= kept
        self.out.append(unit)
        return end

    def _other_reading(self, content: bytes) -> tuple[set[str], set[str], bool]:
        """``content`` read as markup: tags refused there, tags kept, whether it ends in data."""
        if b"<" not in content:
            return set(), set(), True
        if self.depth >= MAX_DEPTH:
            return set(), set(), False
        sub = self.read_fragment(content, None)
        self.base_read = max(self.base_read, sub.base_read)
        return set(sub.outcome.stripped), set(sub.outcome.kept), sub.clean and not sub.outcome.uncertain

    # -- streams: content copied or dropped until its end ------------------------------------------
    def _start_stream(self, buf: bytes, pos: int, body: int, st: hs.Stream) -> int:
        if st.keep:
            self.out.append(buf[pos:body])
        self.stream, self.state = st, State.STREAM
        return body

    def _stream(self, buf: bytes, pos: int, final: bool) -> int:
        st = self.stream
        assert st is not None
        end, done = hs.stream_end(buf, pos, st, final)
        if st.keep:
            self.out.append(buf[pos:end])
        if done:
            self.stream, self.state = st.then_stream(), State.DATA
            if self.stream is not None:
                self.state = State.STREAM
            return end
        return end if end > pos else -1

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
        reading = tree.start(name, attrs)
        if reading == treestate.FOREIGN:
            return self._foreign_start(buf, tag, attrs, final)
        if reading == treestate.BROKE_OUT:
            placeholder = True
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

    def _base_tag(self, buf: bytes, tag: hs.Tag, attrs: tuple[hs.Attr, ...]) -> int:
        """``<base>``: judged like any tag (its href on a refused vendor's host strips it: every
        relative URL of the page would go there). The first one the browser keeps with an href is
        the base later URLs resolve against, so it is read from what is sent, not what came. One
        inside a <template> is inert content: never the page's base."""
        out = self._decided(self._decide_tag(buf, tag, attrs))
        if out is None:
            self._cut()
            return tag.end
        self.out.append(out)
        if not self.base_set and not self.tree.templates:
            if out != buf[tag.start : tag.end]:
                sent = hs.read_tag(out, 0)
                attrs = self.decisions.attributes(sent.raw_attrs) if sent else ()
            href = hs.first_value(attrs, b"href")
            if href is not None:
                self.base_set = True
                # Its own href resolves against the document's URL, never against another <base>.
                self.base = urls.parse(hs.attr_text(href, self.encoding), self.fallback_base) or self.base
        return tag.end

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
        attrs_at = tag.attrs_at - tag.start
        in_foreign = self.tree.in_foreign
        if len(raw) > decisions_.CACHED_TAG_MAX:
            return judge(raw, attrs_at, tag.name, attrs, self._judging(in_foreign))
        key = ("tag", raw, tag.name, self._context, in_foreign)
        return self.decisions.decide(
            key, self.base, lambda: judge(raw, attrs_at, tag.name, attrs, self._judging(in_foreign))
        )

    def _decided(self, verdict: Verdict) -> bytes | None:
        """Apply a verdict: what it found joins the page's outcome; what is sent."""
        if verdict.outcome is not NOTHING:
            self.outcome.merge(verdict.outcome)
        if verdict.base_read > self.base_read:
            self.base_read = verdict.base_read
        return verdict.out

    def _judging(self, in_foreign: bool) -> Judging:
        plan = self.plan
        return Judging(
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

    # -- gate.verdict.Reader: documents and fragments inside this page ----------------------------------
    def read_document(self, doc: bytes) -> Reading:
        """A frame's own document (srcdoc, a data: URL): its first <base href> rules its URLs."""
        sub = self._nested("utf-8", [], document=True)
        out = sub.feed(doc) + sub.close()
        return Reading(out, sub.outcome, sub.base_read, True)

    def read_fragment(self, content: bytes, push: str | None) -> Reading:
        """The other reading of an element's content, from the elements open here (``push``: the
        element itself, when it is a foreign one). A fragment follows this page's base."""
        foreign = self.tree.foreign + [self.tree.entry(push)] if push and self.tree.foreign else self.tree.foreign
        sub = self._nested(self.encoding, foreign)
        sub.feed(content)
        clean = sub.ended_in_data and sub.unit is None
        sub.close()
        return Reading(b"", sub.outcome, sub.base_read, clean)

    def _nested(self, encoding: str, foreign: list[str], document: bool = False) -> PageRewriter:
        """A reader one level deeper, against this base, nothing injected."""
        return PageRewriter(
            replace(self.plan, head_html="", body_html=""),
            encoding,
            fragment=True,
            foreign=foreign,
            depth=self.depth + 1,
            base=self.base,
            base_set=False if document else self.base_set or self.tree.templates > 0,
            decisions=self.decisions,
        )

    # -- units: elements held whole -----------------------------------------------------------------
    def _begin_unit(self, buf: bytes, tag: hs.Tag, kind: UnitKind, attrs: tuple[hs.Attr, ...], final: bool) -> int:
        size = tag.end - tag.start
        self.unit, self.state = _Unit(kind, tag.name, size, attrs, size), State.UNIT
        return self._unit(buf, tag.start, final)

    def _unit(self, buf: bytes, pos: int, final: bool) -> int:
        u = self.unit
        assert u is not None
        idx, u.sub, resume = hs.content_end(buf, pos + u.scan, u.name, u.sub)
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
            self._cut()
        else:
            self.out.append(buf[pos:upto])
        self.unit = None
        if u.kind == UnitKind.SCRIPT or u.name == "script":
            self.stream = hs.Stream(StreamKind.SCRIPT, keep, sub=u.sub)
        else:
            self.stream = hs.Stream(StreamKind.RAW, keep, name=u.name if u.name in hs.RAWTEXT_END else "title")
        self.state = State.STREAM
        return upto

    def _finish_unit(self, buf: bytes, pos: int, content_end: int, end: int, u: _Unit) -> int:
        self.unit, self.state = None, State.DATA
        if end - pos > decisions_.CACHED_TAG_MAX:
            verdict = self._unit_verdict(buf, pos, content_end, end, u)
        else:
            key: tuple[object, ...] = (
                "unit",
                buf[pos:end],
                u.tag_end,
                content_end - pos,
                u.name,
                u.kind,
                self._context,
            )
            if u.kind == UnitKind.DUAL:  # the other reading starts from the open elements
                key += self.tree.key()
            verdict = self.decisions.decide(key, self.base, lambda: self._unit_verdict(buf, pos, content_end, end, u))
        out = self._decided(verdict)
        if out is not None:
            self.out.append(out)
        else:
            self._cut()
        return end

    def _unit_verdict(self, buf: bytes, pos: int, content_end: int, end: int, u: _Unit) -> Verdict:
        """The element as sent, or stripped: its content's verdict and its start tag's."""
        ctx = self._judging(self.tree.in_foreign)
        content, read = judge_content(buf[pos + u.tag_end : content_end], u.name, u.kind == UnitKind.DUAL, u.attrs, ctx)
        tag = hs.read_tag(buf, pos)
        assert tag is not None
        start = self._decide_tag(buf, tag, u.attrs)
        whole = element(content, start.out, buf[pos + u.tag_end : end], ctx)
        outcome = Outcome()
        for part in (read.outcome, start.outcome, whole.outcome):
            outcome.merge(part)
        return Verdict(whole.out, outcome, max(read.base_read, start.base_read))

    # -- injection ---------------------------------------------------------------------------------
    def _inject_head(self) -> None:
        self.head_done = True
        if self.plan.head_html:
            self.out.append(self.plan.head_html.encode(self.encoding, "xmlcharrefreplace"))

    def _inject_body(self) -> None:
        self.body_done = True
        if self.plan.body_html:
            self.out.append(self.plan.body_html.encode(self.encoding, "xmlcharrefreplace"))


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
