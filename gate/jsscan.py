"""A JavaScript tokenizer for inline scripts, and the few readings gate needs on top of it.

It reads as a classic script does (not a module): strings, template literals with nested
substitutions, comments, regular-expression literals (told from division by the token before them,
as engines do in practice), the Annex B HTML-like comments (``<!--`` anywhere, ``-->`` first on a
line), a hashbang, the BOM and every Unicode space, and identifiers written with ``\\u`` escapes.
On top of the tokens: the member chains a script names (``window.fbq``, ``Adjust['trackEvent']``)
and whether each is called, the arguments of a call, the entries of object literals, and string
constants held in variables.

The work is linear in the text: every token is one anchored regex match, no pattern backtracks
(possessive quantifiers), brackets are matched with one stack whose depth is bounded. A script that
cannot be read to its end (an unterminated string, comment, template or regex, brackets that do not
match, a character no token starts with) is ``clean = False``: the caller fails closed. Stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

NAME, PUNCT, STRING, TEMPLATE, NUMBER, REGEX = "name", "punct", "string", "template", "number", "regex"
MAX_SPAN = 2000  # tokens of one call read for the strings that name its tag; a longer call is anybody's
MAX_DEPTH = 1000  # brackets and template substitutions open at once; deeper is unreadable (fail closed)

_LT = "\n\r\u2028\u2029"
_WS = "\t\v\f \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"
# Whitespace, line terminators and comments between tokens (a "-->" comment is handled apart: it
# counts only first on a line). "<!--" opens a comment wherever a token could start.
_SKIP = re.compile(rf"(?:[{_WS}{_LT}]++|//[^{_LT}]*+|/\*(?:[^*]++|\*(?!/))*+\*/|<!--[^{_LT}]*+)*+")
_SKIP_MODULE = re.compile(rf"(?:[{_WS}{_LT}]++|//[^{_LT}]*+|/\*(?:[^*]++|\*(?!/))*+\*/)*+")  # no HTML-like comments
_NEWLINE = re.compile(f"[{_LT}]")
_LINE_REST = re.compile(f"[^{_LT}]*+")
_IDENT = r"(?:[\w$]|\\u(?:[0-9a-fA-F]{4}|\{[0-9a-fA-F]++\}))++"
_PUNCTS = [
    ">>>=",
    "...",
    "===",
    "!==",
    "**=",
    "<<=",
    ">>=",
    ">>>",
    "&&=",
    "||=",
    "??=",
    "=>",
    "==",
    "!=",
    "<=",
    ">=",
    "&&",
    "||",
    "??",
    "++",
    "--",
    "+=",
    "-=",
    "*=",
    "%=",
    "&=",
    "|=",
    "^=",
    "**",
    "<<",
    ">>",
]
_PUNCT = "|".join(re.escape(p) for p in _PUNCTS) + r"|\?\.(?!\d)|[{}()\[\];,<>+\-*%&|^!~?:=.@#]"
_COMMON = (
    rf"(?P<number>0[xXoObB][0-9a-fA-F_]++n?|(?:\d[\d_]*+(?:\.[\d_]*+)?|\.\d[\d_]*+)(?:[eE][+-]?\d[\d_]*+)?n?)"
    rf"|(?P<name>{_IDENT})"
    r"""|(?P<string>"(?:[^"\\\n\r]++|\\(?:\r\n|[\s\S]))*+"|'(?:[^'\\\n\r]++|\\(?:\r\n|[\s\S]))*+')"""
    r"|(?P<template>`)"
)
_NOT_LT = r"\n\r\u2028\u2029"
_REGEX_LIT = (
    rf"(?P<regex>/(?![*/])(?:[^/\\\[{_NOT_LT}]++|\\[^{_NOT_LT}]"
    rf"|\[(?:[^\]\\{_NOT_LT}]++|\\[^{_NOT_LT}])*+\])++/[\w$]*+)"
)
_SKIP_BODY = _SKIP.pattern
_SKIP_MODULE_BODY = _SKIP_MODULE.pattern
_TOKEN_REGEX = f"{_COMMON}|{_REGEX_LIT}|(?P<punct>{_PUNCT})"  # where "/" starts a regex
_TOKEN_DIV = rf"{_COMMON}|(?P<punct>{_PUNCT}|/=|/)"  # where "/" divides
# One match per token: what is skipped before it (group "ws"), then the token (its kind is the match's
# lastgroup; "ws" when no token starts there). Keyed by (module, regex_ok).
_NEXT = {
    (module, regex_ok): re.compile(
        f"(?P<ws>{_SKIP_MODULE_BODY if module else _SKIP_BODY})(?:{_TOKEN_REGEX if regex_ok else _TOKEN_DIV})?"
    )
    for module in (False, True)
    for regex_ok in (False, True)
}
_TEMPLATE_CHARS = re.compile(r"(?:[^`\\$]++|\\[\s\S]|\$(?!\{))*+")
# After these words an expression starts, so "/" opens a regex; after any other name it divides.
_BEFORE_EXPRESSION = frozenset(
    "return typeof instanceof in of new delete void throw case do else yield await extends".split()
)
_CONDITION = frozenset({"if", "while", "for", "with"})  # "if (x) /re/.test(s)": a regex after ")"
_CLOSE = {")": "(", "]": "[", "}": "{"}
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r\n|[\s\S])")
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\n": "",
    "\r": "",
    "\r\n": "",
    "\u2028": "",
    "\u2029": "",
}


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a match of ``pattern`` (one that may be empty) at ``pos`` ends."""
    m = pattern.match(text, pos)
    return m.end() if m else pos


class Token(NamedTuple):
    kind: str
    value: str  # names and strings decoded (escapes resolved); others as written
    start: int


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] in "ux" and len(e) > 1:
            try:
                return chr(int(e[2:-1] if e.startswith("u{") else e[1:], 16))
            except (ValueError, OverflowError):
                return ""
        return _SIMPLE_ESCAPES.get(e, e)

    return _ESCAPE.sub(one, raw)


@dataclass
class Script:
    """The tokens of one script, which bracket closes which, and whether it was read to its end."""

    tokens: list[Token]
    match: dict[int, int]  # index of an opening bracket -> index of its closing one (and back)
    clean: bool
    error: str = ""
    _constants: dict[str, set[str]] | None = field(default=None, repr=False)

    # -- what the script names and calls ---------------------------------------------------------------
    def references(self) -> Iterator[Reference]:
        """Every member chain that starts with a name (``a.b['c'].d``), and the call that follows it."""
        toks = self.tokens
        n = len(toks)
        for i, tok in enumerate(toks):
            if tok.kind != NAME or (i and toks[i - 1].kind == PUNCT and toks[i - 1].value in (".", "?.")):
                continue
            segments = [tok.value]
            j = i + 1
            while j < n:
                t = toks[j]
                if t.kind == PUNCT and t.value in (".", "?.") and j + 1 < n and toks[j + 1].kind == NAME:
                    segments.append(toks[j + 1].value)
                    j += 2
                elif t.kind == PUNCT and t.value in ("[", "?.") and self._subscript(j) is not None:
                    value, j = self._subscript(j)  # type: ignore[misc]
                    segments.append(value)
                else:
                    break
            declared = i > 0 and toks[i - 1].kind == NAME and toks[i - 1].value == "function"
            call = None
            if j < n and not declared:
                t = toks[j]
                if t.kind == PUNCT and t.value == "?." and j + 1 < n and toks[j + 1].value == "(":
                    j += 1
                    t = toks[j]
                if t.kind == PUNCT and t.value == "(" and j in self.match:
                    call = (j, self.match[j])
                elif t.kind == TEMPLATE:  # a tagged template calls its tag
                    call = (j, j)
            yield Reference(tuple(segments), i, call)

    def _subscript(self, j: int) -> tuple[str, int] | None:
        """``['name']`` or ``?.['name']`` at token j: (name, index after it)."""
        toks = self.tokens
        if toks[j].value == "?.":
            j += 1
            if j >= len(toks) or toks[j].value != "[" or toks[j].kind != PUNCT:
                return None
        if j + 2 < len(toks) and toks[j + 1].kind == STRING and toks[j + 2].kind == PUNCT and toks[j + 2].value == "]":
            return toks[j + 1].value, j + 3
        return None

    def arguments(self, call: tuple[int, int]) -> list[tuple[int, int]]:
        """The token ranges [start, end) of a call's arguments (a tagged template: none)."""
        return self._items(*call)

    def _items(self, open_: int, close: int) -> list[tuple[int, int]]:
        """Comma-separated ranges between two matching brackets, nested brackets skipped whole."""
        out = []
        start = j = open_ + 1
        while j < close:
            t = self.tokens[j]
            if t.kind == PUNCT and t.value in ("(", "[", "{") and j in self.match:
                j = self.match[j] + 1
                continue
            if t.kind == PUNCT and t.value == ",":
                out.append((start, j))
                start = j + 1
            j += 1
        if start < close:
            out.append((start, close))
        return out

    def objects(self) -> Iterator[list[tuple[str, tuple[int, int]]]]:
        """The entries of every object literal: [(key, value token range)], shorthand ``{em}`` too."""
        toks = self.tokens
        for i, tok in enumerate(toks):
            if tok.kind != PUNCT or tok.value != "{" or i not in self.match:
                continue
            entries = []
            for start, end in self._items(i, self.match[i]):
                if start >= end:
                    continue
                key = toks[start]
                if key.kind not in (NAME, STRING, NUMBER):
                    continue
                if start + 1 < end and toks[start + 1].kind == PUNCT and toks[start + 1].value == ":":
                    entries.append((key.value, (start + 2, end)))
                elif start + 1 == end and key.kind == NAME:
                    entries.append((key.value, (start, end)))  # {em}: the variable em's value
            yield entries

    def is_empty(self, span: tuple[int, int]) -> bool:
        """The value in ``span`` is a literal that carries nothing: "", ``, [], [""], {}, null,
        undefined, void 0, false."""
        if span[1] - span[0] > 3:
            return False
        vals = [(t.kind, t.value) for t in self.tokens[span[0] : span[1]]]
        if len(vals) == 1:
            kind, value = vals[0]
            return (
                (kind == STRING and not value.strip())
                or (kind == TEMPLATE and value == "``")
                or (kind == NAME and value in ("null", "undefined", "false"))
            )
        if vals == [(NAME, "void"), (NUMBER, "0")]:
            return True
        if vals in ([(PUNCT, "[")] + [(PUNCT, "]")], [(PUNCT, "{"), (PUNCT, "}")]):
            return True
        if len(vals) == 3 and vals[0] == (PUNCT, "[") and vals[2] == (PUNCT, "]"):
            return self.is_empty((span[0] + 1, span[0] + 2))
        return False

    def strings(self, span: tuple[int, int]) -> Iterator[str]:
        """Every string in ``span`` (nested ones too), and the values of the names held as constants.
        Callers bound ``span`` (see MAX_SPAN): calls nested in calls would otherwise be read again
        at every level."""
        consts = self.constants()
        for t in self.tokens[span[0] : span[1]]:
            if t.kind == STRING:
                yield t.value
            elif t.kind == NAME and t.value in consts:
                yield from consts[t.value]

    def is_opaque(self, span: tuple[int, int]) -> bool:
        """The value in ``span`` is a bare variable whose content this reading cannot know."""
        if span[1] - span[0] > 31:
            return False
        toks = self.tokens[span[0] : span[1]]
        if (
            not toks
            or len(toks) % 2 == 0
            or any(
                t.kind != (NAME if k % 2 == 0 else PUNCT) or (k % 2 and t.value not in (".", "?."))
                for k, t in enumerate(toks)
            )
        ):
            return False  # not a name or a member chain (a.b.c)
        if len(toks) == 1 and toks[0].value in self.constants():
            return False
        return toks[0].value not in ("arguments", "null", "undefined", "true", "false", "NaN", "Infinity") and (
            len(toks) > 1 or toks[0].value != "this"
        )

    def constants(self) -> dict[str, set[str]]:
        """Names assigned a string literal anywhere (``var ID = 'G-1'``, ``{id: 'G-1'}``)."""
        if self._constants is None:
            found: dict[str, set[str]] = {}
            toks = self.tokens
            for i in range(len(toks) - 2):
                if (
                    toks[i].kind == NAME
                    and toks[i + 1].kind == PUNCT
                    and toks[i + 1].value in ("=", ":")
                    and toks[i + 2].kind == STRING
                ):
                    found.setdefault(toks[i].value, set()).add(toks[i + 2].value)
            self._constants = found
        return self._constants


class Reference(NamedTuple):
    segments: tuple[str, ...]  # ("window", "fbq"); subscripts by string are segments too
    at: int  # token index of the first segment
    call: tuple[int, int] | None  # (open, close) token indexes of the call's parentheses, if called


class _Reader:
    def __init__(self, text: str, module: bool) -> None:
        self.text = text
        self.module = module
        self.tokens: list[Token] = []
        self.match: dict[int, int] = {}
        self.stack: list[tuple[str, int]] = []  # ("(" | "[" | "{" | "${", token index)
        self.conditions: set[int] = set()  # "(" token indexes that follow if/while/for/with
        self.objects: set[int] = set()  # "{" token indexes that open an object literal
        self.regex_ok = True
        self.line_start = True

    def fail(self, why: str, at: int) -> Script:
        return Script(self.tokens, self.match, False, f"{why} at {at}")

    def read(self) -> Script:
        text, n = self.text, len(self.text)
        pos = 1 if text.startswith("\ufeff") else 0
        if text.startswith("#!", pos):  # a hashbang, first thing only
            pos = _end(_LINE_REST, text, pos)
        module = self.module
        tokens = self.tokens
        while True:
            m = _NEXT[module, self.regex_ok].match(text, pos)
            assert m is not None  # every part of the pattern may be empty
            start = m.end("ws")
            if start > pos and _NEWLINE.search(text, pos, start):
                self.line_start = True
            kind = m.lastgroup or "ws"
            if kind == "ws":  # no token starts here: the end, a "-->" line, or something unreadable
                pos = start
                if pos >= n:
                    break
                if self.line_start and not module and text.startswith("-->", pos):
                    pos = _end(_LINE_REST, text, pos)
                    continue
                if text.startswith("/*", pos):
                    return self.fail("unterminated comment", pos)
                return self.fail("unexpected character", pos)
            if self.line_start and not module and text.startswith("-->", start):
                pos = _end(_LINE_REST, text, start)  # "-->" first on a line was read as "--" ">"
                continue
            value = m.group(kind)
            self.line_start = False
            pos = m.end()
            if kind == "template" or (value == "}" and self.stack and self.stack[-1][0] == "${"):
                if kind != "template":
                    self.stack.pop()  # the substitution ends; the template goes on
                pos = self.template(pos, start)
                if pos < 0:
                    return self.fail("unterminated template", start)
            elif kind == "punct":
                error = self.punct(value, start)
                if error:
                    return self.fail(error, start)
            else:
                if kind == NAME:
                    if "\\" in value:
                        value = _unescape(value)
                    if value in _BEFORE_EXPRESSION:
                        prev = tokens[-1] if tokens else None
                        self.regex_ok = prev is None or prev.kind != PUNCT or prev.value not in (".", "?.")
                    else:
                        self.regex_ok = False
                else:
                    if kind == STRING:
                        value = _unescape(value[1:-1])
                    self.regex_ok = False
                self.tokens.append(Token(kind, value, start))
        if self.stack:
            return self.fail("unclosed bracket", self.tokens[self.stack[-1][1]].start)
        return Script(self.tokens, self.match, True)

    def punct(self, value: str, start: int) -> str:
        """Record a punctuator; an error message when brackets do not match."""
        index = len(self.tokens)
        prev = self.tokens[-1] if self.tokens else None
        self.tokens.append(Token(PUNCT, value, start))
        if value in ("(", "[", "{"):
            if len(self.stack) >= MAX_DEPTH:
                return "nested too deep"
            self.stack.append((value, index))
            if value == "(" and prev is not None and prev.kind == NAME and prev.value in _CONDITION:
                self.conditions.add(index)
            elif (
                value == "{"
                and prev is not None
                and (
                    (prev.kind == PUNCT and prev.value not in (")", "]", "}", ";", "=>"))
                    or (prev.kind == NAME and prev.value in _BEFORE_EXPRESSION)
                )
            ):
                self.objects.add(index)  # an object literal: a "/" after its "}" divides
            self.regex_ok = True
        elif value in _CLOSE:
            if not self.stack or self.stack[-1][0] != _CLOSE[value]:
                return f"unmatched {value}"
            at = self.stack.pop()[1]
            self.match[at], self.match[index] = index, at
            self.regex_ok = (value == "}" and at not in self.objects) or (value == ")" and at in self.conditions)
        else:
            self.regex_ok = value not in ("++", "--")
        return ""

    def template(self, pos: int, start: int) -> int:
        """Read template characters from ``pos`` (after a backquote or a substitution's "}") up to
        the closing backquote or the next "${"; the position after it, -1 when the text ends first.
        A template token's value is its source text, backquotes and "${" included."""
        text = self.text
        end = _end(_TEMPLATE_CHARS, text, pos)
        if end >= len(text):
            return -1
        if text[end] == "`":
            self.tokens.append(Token(TEMPLATE, text[start : end + 1], start))
            self.regex_ok = False
            return end + 1
        if len(self.stack) >= MAX_DEPTH:
            return -1
        self.tokens.append(Token(TEMPLATE, text[start : end + 2], start))
        self.stack.append(("${", len(self.tokens) - 1))
        self.regex_ok = True
        return end + 2


def read(text: str, module: bool = False) -> Script:
    """Tokenize ``text`` as a classic script (``module``: as a module script, where ``<!--`` and
    ``-->`` are operators, not comments); never raises."""
    return _Reader(text, module).read()
