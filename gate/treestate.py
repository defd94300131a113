"""What the tree builder has open, as far as it changes how the tokenizer reads what follows: foreign
content (SVG, MathML) and its integration points, <select>, <template>, and whether an end tag left
the reading in doubt. gate.rewrite asks it before reading each tag; it reads nothing itself.

The open foreign elements are kept as "<namespace> <name>" ("svg title", "math mi"): whether an element
is an integration point hangs on its namespace (an <mi> or <annotation-xml> inside <svg> is an SVG
element, and its content is foreign), and an element takes its parent's namespace, whatever its name.
"+": an annotation-xml whose encoding makes it an HTML integration point.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import htmlstream as hs

MATH_TEXT = frozenset({"math mi", "math mo", "math mn", "math ms", "math mtext"})
HTML_INTEGRATION = frozenset({"svg foreignobject", "svg desc", "svg title", "math annotation-xml+", *MATH_TEXT})
_ANNOTATION_HTML = "math annotation-xml+"
_HTML_ENCODINGS = (b"text/html", b"application/xhtml+xml")
# Start tags that end foreign content (the tree builder pops back to HTML before inserting them).
BREAKOUT = frozenset(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    "listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)
_FONT_BREAKS = (b"color", b"face", b"size")
HTML, FOREIGN, BROKE_OUT = 0, 1, 2  # how a start tag is read (OpenElements.start)


class OpenElements:
    """The open elements that decide tokenization. ``foreign`` is handed to nested readers as is; only
    these methods change it, and they keep the three facts about its top current (the rewriter reads
    them at every stop)."""

    __slots__ = ("foreign", "in_select", "uncertain", "templates", "html_mode", "in_foreign", "math_text")

    def __init__(self, foreign: Sequence[str] = ()) -> None:
        self.foreign: list[str] = list(foreign)
        self.in_select = False
        self.uncertain = False  # an end tag in foreign content may or may not have left it
        self.templates = 0  # open <template> elements: their content is inert
        self.html_mode = True  # tags are read as HTML here (no foreign content, or at an integration point)
        self.in_foreign = False  # in foreign content, outside an integration point
        self.math_text = False  # at a MathML text integration point (<mglyph>, <malignmark> are foreign)
        self._settle()

    def _settle(self) -> None:
        """Work out the facts about the top of ``foreign`` again, after it changed."""
        top = self.foreign[-1] if self.foreign else ""
        self.html_mode = not top or top in HTML_INTEGRATION
        self.in_foreign = not self.html_mode
        self.math_text = top in MATH_TEXT

    def key(self) -> tuple[tuple[str, ...], bool, bool]:
        """All of it that the other reading of an element starts from (for remembered verdicts)."""
        return tuple(self.foreign), self.in_select, self.uncertain

    def start(self, name: str, attrs: Sequence[hs.Attr]) -> int:
        """How the start tag ``name`` is read here: FOREIGN (a foreign element), BROKE_OUT (an HTML
        element that closed the foreign content around it) or HTML."""
        if not self.foreign:
            return HTML
        if self.html_mode and not (name in ("mglyph", "malignmark") and self.math_text):
            return HTML
        if name in BREAKOUT or (name == "font" and any(a.name in _FONT_BREAKS for a in attrs)):
            self.break_out()
            return BROKE_OUT
        return FOREIGN

    def break_out(self) -> None:
        while self.foreign and self.foreign[-1] not in HTML_INTEGRATION:
            self.foreign.pop()
        self.uncertain = False
        self._settle()

    def open_root(self, name: str) -> None:
        """<svg> or <math> in HTML content."""
        self.foreign.append(name + " " + name)
        self._settle()

    def open_foreign(self, name: str, attrs: Sequence[hs.Attr]) -> None:
        self.foreign.append(self.entry(name, attrs))
        self._settle()

    def entry(self, name: str, attrs: Sequence[hs.Attr] = ()) -> str:
        """The stack entry of a foreign element opened here: in its parent's namespace, except an
        <svg> in MathML's <annotation-xml> (the tree builder makes that one SVG)."""
        top = self.foreign[-1]
        ns = "svg" if name == "svg" and top.startswith("math annotation-xml") else top[: top.index(" ")]
        if ns == "math" and name == "annotation-xml":
            enc = (hs.first_value(attrs, b"encoding") or b"").strip(b"\"' \t\n\f\r").lower()
            if enc in _HTML_ENCODINGS:
                return _ANNOTATION_HTML
        return ns + " " + name

    def close(self, name: str) -> None:
        """An end tag."""
        at = self._last_named(name) if self.foreign else -1
        if at >= 0:
            del self.foreign[at:]
            self._settle()
        elif self.foreign and not self.html_mode:  # "</p>", "</br>" break out in current browsers,
            # not in older parsers; others may close an HTML ancestor or be ignored: read what follows
            # both ways until it settles
            self.uncertain = True
        elif name == "select" and not self.foreign:
            self.in_select = False
        if name == "template" and at < 0 and self.templates:
            self.templates -= 1

    def _last_named(self, name: str) -> int:
        """Where the innermost open foreign element called ``name`` is, or -1 (an end tag in foreign
        content closes by name, whatever the namespace)."""
        foreign = self.foreign
        for i in range(len(foreign) - 1, -1, -1):
            entry = foreign[i]
            local = "annotation-xml" if entry == _ANNOTATION_HTML else entry[entry.index(" ") + 1 :]
            if local == name:
                return i
        return -1
