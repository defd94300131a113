"""gate.jsscan, the JavaScript tokenizer, and the script corpus read with it: which vendor a script
calls, wherever an engine would run the call, and whether it sends personal data."""

from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate import jsscan, vendors

from .corpus import SCRIPT_CASES

REGISTRY = vendors.load()


def kinds(text: str) -> list[tuple[str, str]]:
    script = jsscan.read(text)
    assert script.clean, script.error
    return [(t.kind, t.value) for t in script.tokens]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a / b / c", [("name", "a"), ("punct", "/"), ("name", "b"), ("punct", "/"), ("name", "c")]),
        ("x = /a[/]b/g", [("name", "x"), ("punct", "="), ("regex", "/a[/]b/g")]),
        ("return /re/", [("name", "return"), ("regex", "/re/")]),
        (
            "if (a) /'/.test(s)",
            [
                ("name", "if"),
                ("punct", "("),
                ("name", "a"),
                ("punct", ")"),
                ("regex", "/'/"),
                ("punct", "."),
                ("name", "test"),
                ("punct", "("),
                ("name", "s"),
                ("punct", ")"),
            ],
        ),
        ("f(a) / 2", [("name", "f"), ("punct", "("), ("name", "a"), ("punct", ")"), ("punct", "/"), ("number", "2")]),
        (
            "x = {} / 2",
            [("name", "x"), ("punct", "="), ("punct", "{"), ("punct", "}"), ("punct", "/"), ("number", "2")],
        ),
        (
            "if (a) {}\n/re/",
            [
                ("name", "if"),
                ("punct", "("),
                ("name", "a"),
                ("punct", ")"),
                ("punct", "{"),
                ("punct", "}"),
                ("regex", "/re/"),
            ],
        ),
        ("a++ / 2", [("name", "a"), ("punct", "++"), ("punct", "/"), ("number", "2")]),
        ("o.return / 2", [("name", "o"), ("punct", "."), ("name", "return"), ("punct", "/"), ("number", "2")]),
        ("'a\\'b' + \"c\\x41\\u{42}\"", [("string", "a'b"), ("punct", "+"), ("string", "cAB")]),
        ("'line\\\ncontinued'", [("string", "linecontinued")]),
        (
            "`a${b}c${`d${e}`}f`",
            [
                ("template", "`a${"),
                ("name", "b"),
                ("template", "}c${"),
                ("template", "`d${"),
                ("name", "e"),
                ("template", "}`"),
                ("template", "}f`"),
            ],
        ),
        (
            "`${ {a: 1} }`",
            [
                ("template", "`${"),
                ("punct", "{"),
                ("name", "a"),
                ("punct", ":"),
                ("number", "1"),
                ("punct", "}"),
                ("template", "}`"),
            ],
        ),
        ("a <!-- b\nc", [("name", "a"), ("name", "c")]),
        ("-->x\ny", [("name", "y")]),
        ("a\n  --> b\nc", [("name", "a"), ("name", "c")]),
        ("a /*\n*/ --> b\nc", [("name", "a"), ("name", "c")]),
        ("a --> b", [("name", "a"), ("punct", "--"), ("punct", ">"), ("name", "b")]),
        ("\ufeffa\u3000b\u2028c", [("name", "a"), ("name", "b"), ("name", "c")]),
        ("#!/usr/bin/env node\nx", [("name", "x")]),
        ("\\u0066bq \\u{61}", [("name", "fbq"), ("name", "a")]),
        (
            "0x1F .5 1e3 10n 1_000",
            [("number", "0x1F"), ("number", ".5"), ("number", "1e3"), ("number", "10n"), ("number", "1_000")],
        ),
        (
            "a?.b ?? c?.[0] x?.5:1",
            [
                ("name", "a"),
                ("punct", "?."),
                ("name", "b"),
                ("punct", "??"),
                ("name", "c"),
                ("punct", "?."),
                ("punct", "["),
                ("number", "0"),
                ("punct", "]"),
                ("name", "x"),
                ("punct", "?"),
                ("number", ".5"),
                ("punct", ":"),
                ("number", "1"),
            ],
        ),
        ("x >>>= 1", [("name", "x"), ("punct", ">>>="), ("number", "1")]),
        ("求人 = 1", [("name", "求人"), ("punct", "="), ("number", "1")]),
    ],
    ids=repr,
)
def test_tokens(text, expected):
    assert kinds(text) == expected


def test_module_scripts_have_no_html_like_comments():
    """In a module "<!--" and "-->" are operators: a call after them on the line runs."""
    assert [t.value for t in jsscan.read("if (a<!--b) fbq(1)", module=True).tokens][-4:] == ["fbq", "(", "1", ")"]
    assert "facebook.pixel" in REGISTRY.judge_text("x = a\n--> b; fbq('track', 'Lead')", module=True).tags
    assert not REGISTRY.judge_text("x = a\n--> b; fbq('track', 'Lead')").tags


@pytest.mark.parametrize(
    "text",
    [
        "'unterminated",
        '"a\nb"',
        "/* never ends",
        "`never ends",
        "`a${b",
        "/unterminated",
        "/a\n/",
        "f(]",
        "f(",
        "}",
        "a 。 b",
        "x = `${`${`",
        "(" * (jsscan.MAX_DEPTH + 1) + ")" * (jsscan.MAX_DEPTH + 1),
    ],
    ids=repr,
)
def test_unreadable_scripts_are_not_clean(text):
    script = jsscan.read(text)
    assert not script.clean and script.error


def test_brackets_are_matched():
    script = jsscan.read("f(a, [b], {c: d(e)})")
    toks = script.tokens
    opens = [i for i, t in enumerate(toks) if t.value in "([{" and t.kind == "punct"]
    assert all(toks[script.match[i]].value == {"(": ")", "[": "]", "{": "}"}[toks[i].value] for i in opens)
    assert [(toks[a].value, b - a) for a, b in script.arguments((1, script.match[1]))] == [("a", 1), ("[", 3), ("{", 8)]


def best_time(fn, *args) -> float:
    best = 1e9
    for _ in range(3):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


HOSTILE = [
    "/" * 20000,
    "[" * 50000,
    "`${" * 20000,
    "'" + "\\" * 50000,
    "/*" + "*" * 50000,
    "a" * 100000 + "(",
    "x=/[" + "\\[" * 30000,
    "<!--" * 20000,
    "\n-->" * 20000,
    "((((a" * 10000,
    "f(" + "{a:1}," * 10000 + ")",
    "fbq(" * 5000,
    "`" + "$" * 50000,
    "fbq({em:" * 5000,
    "gtag(a," * 10000,
    "gtag('x'," * 5000 + "1" + ")" * 5000,
    "fbq({em:" * 5000 + "1" + "})" * 5000,
    "criteo_q.push([" * 5000 + "]" * 5000 + ")",
    "ytag(a.b," * 5000 + "c" + ")" * 5000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: f"{t[:12]!r}…{len(t)}")
def test_hostile_input_is_read_in_bounded_time(text):
    """Tokenizing and judging a hostile 20-120 KB text costs at most what an ordinary script of the
    same length costs, several times over (measured against one, so a loaded machine changes nothing)."""
    ordinary = ("var total = price * 1.1; fbq('track', 'Lead', {value: total}); // 計測\n" * 2000)[: len(text)]
    allowed = 8 * best_time(lambda t: (jsscan.read(t), REGISTRY.judge_text(t)), ordinary) + 0.02
    assert best_time(lambda t: (jsscan.read(t), REGISTRY.judge_text(t)), text) < allowed


@pytest.mark.parametrize(
    "piece",
    [
        "a=/x/;b=c/d/e;`${f(`${'g'}`)}`;/*h*/<!--i\n-->j\n{k:[l,(m)]};",
        "fbq('init',P,{em:h,ph:[`${x}`]});gtag('config',ID);criteo_q.push({event:'setEmail',email:''});",
    ],
)
def test_work_grows_linearly(piece):
    """Four times the text takes about four times as long to read and judge, never sixteen."""

    def judged(text: str) -> None:
        REGISTRY.judge_text(text)

    small, big = best_time(judged, piece * 300), best_time(judged, piece * 1200)
    assert big < 8 * small


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1 /*'\"`${}()[]<!->\n\\.?:;,=+u\ufeff")), max_size=200), st.booleans())
def test_any_text_is_read_without_raising_and_tokens_in_order(text, module):
    script = jsscan.read(text, module)
    starts = [t.start for t in script.tokens]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(0 <= s < len(text) for s in starts)
    for i, j in script.match.items():
        assert script.match[j] == i
    REGISTRY.judge_text(text, module)


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=[c.id for c in SCRIPT_CASES])
def test_script_corpus_calls_and_personal_data(case):
    judged = REGISTRY.judge_text(case.script)
    if case.tag is None:
        assert not judged.tags
    else:
        assert case.tag in judged.tags
    assert judged.sends == case.sends
    assert not judged.unsure


CALLING = [c for c in SCRIPT_CASES if c.tag]


@pytest.mark.parametrize("case", CALLING, ids=[c.id for c in CALLING])
def test_script_corpus_cut_short_fails_closed(case):
    """The same script cut off inside its call cannot be read to its end: it is still the vendor's."""
    cut = case.script[: case.script.rindex("(") + 2] + "'"
    judged = REGISTRY.judge_text(cut)
    assert case.tag.split(".")[0] in {t.split(".")[0] for t in judged.tags}
    assert judged.unsure


def test_jsscan_uses_the_standard_library_only():
    tree = ast.parse(Path(jsscan.__file__).read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    imported = {a.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names), imported
