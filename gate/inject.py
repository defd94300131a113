"""What gate adds to a page, and the two start tags that change how the rest of it is read.

gate adds ``head_html`` first in <head> (the consent defaults, the guard, ``stub_script``'s stand-ins,
built per consent in gate/proxy.py) and ``body_html`` before </body> (the banner or the settings link).
Each goes in once, at the first place the browser would put it: before the first start tag that is
not <html> or <head> (or right after <head>/<body>), and at </body> or </html>; a page that has none
of these gets them at its end (PageRewriter.close).

Two start tags reach past themselves, so the reader keeps what they say:
- ``<base href>``: every relative URL after it resolves against it. It is judged like any tag (on a
  refused vendor's host it is stripped), and the base is read from the tag as sent: a browser
  resolves against the first <base> with an href that reaches it, never one gate removed.
- an input asking for personal data (a name, an e-mail address, a phone number): from there on, the
  vendor tags that read forms are refused unless the visitor let that recipient have personal data.

The functions taking ``reader`` are PageRewriter's own methods, bound in gate/rewrite.py (the per-tag
path calls them by name); ``stub_script`` reads nothing of the reader.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from . import htmlstream as hs
from . import urls
from .vendors import Registry, per_consent

if TYPE_CHECKING:
    from .rewrite import PageRewriter


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


# -- the reader's steps (PageRewriter methods) ------------------------------------------------------
def inject_head(reader: PageRewriter) -> None:
    reader.head_done = True
    if reader.plan.head_html:
        reader.out.append(reader.plan.head_html.encode(reader.encoding, "xmlcharrefreplace"))


def inject_body(reader: PageRewriter) -> None:
    reader.body_done = True
    if reader.plan.body_html:
        reader.out.append(reader.plan.body_html.encode(reader.encoding, "xmlcharrefreplace"))


def base_tag(reader: PageRewriter, buf: bytes, tag: hs.Tag, attrs: tuple[hs.Attr, ...]) -> int:
    """``<base>``: judged like any tag (its href on a refused vendor's host strips it: every
    relative URL of the page would go there). The first one the browser keeps with an href is
    the base later URLs resolve against, so it is read from what is sent, not what came. One
    inside a <template> is inert content: never the page's base."""
    out = reader._decided(reader._decide_tag(buf, tag, attrs))
    if out is None:
        reader._cut()
        return tag.end
    reader.out.append(out)
    if not reader.base_set and not reader.tree.templates:
        if out != buf[tag.start : tag.end]:
            sent = hs.read_tag(out, 0)
            attrs = reader.decisions.attributes(sent.raw_attrs) if sent else ()
        href = hs.first_value(attrs, b"href")
        if href is not None:
            reader.base_set = True
            # Its own href resolves against the document's URL, never against another <base>.
            reader.base = urls.parse(hs.attr_text(href, reader.encoding), reader.fallback_base) or reader.base
    return tag.end


def form_found(reader: PageRewriter) -> None:
    """A form asks for personal data: from here on, tags that read forms are refused unless the
    visitor agreed to give that recipient personal data (the plan lists them). What ran before
    this point is why gate also remembers the path (proxy.py): the next view withholds them whole."""
    reader.outcome.form_page = True
    withdrawn = reader.allowed & reader.plan.form_readers
    if withdrawn:
        reader.allowed -= withdrawn
        reader.plan = replace(reader.plan, allowed=reader.allowed)
        reader.refusing = True
        reader._context = (reader.allowed, reader.refusing, *reader._context[2:])
