"""Run the rewriter on gate/_fastscan.c's searches or on their pure-Python definitions.

The rewrite, corpus and property tests run once per scan (``SCANS``, or the ``scan`` fixture made by
``scan_fixture``), so a difference between the C scan and the regex it replaces shows as a failing
test, not only in tests/test_fastscan.py's differential checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gate import decisions, htmlstream, inert, matcher
from gate.vendors import Registry

SCANS = pytest.mark.parametrize("scan", ["c", "python"])


@contextmanager
def scanning(kind: str, *registries: Registry) -> Iterator[None]:
    """With kind "python" the pure-Python scans replace the C ones. The registries' remembered
    verdicts are forgotten first and after, so the scan chosen is the one that decides."""
    saved = (
        htmlstream._boring_html_c,
        htmlstream.script_end,
        htmlstream.read_tag,
        inert.html_end,
        matcher._word_positions,
    )
    if kind == "python":
        htmlstream._boring_html_c = None
        htmlstream.script_end = htmlstream.script_end_py
        htmlstream.read_tag = htmlstream.read_tag_py
        inert.html_end = inert.html_end_py
        matcher._word_positions = matcher._word_positions_py
    for registry in registries:
        decisions.forget(registry)
    try:
        yield
    finally:
        (
            htmlstream._boring_html_c,
            htmlstream.script_end,
            htmlstream.read_tag,
            inert.html_end,
            matcher._word_positions,
        ) = saved
        for registry in registries:
            decisions.forget(registry)


def scan_fixture(*registries: Registry) -> Any:
    """An autouse fixture running every test of a module once per scan."""

    @pytest.fixture(autouse=True, params=["c", "python"])
    def scan(request: pytest.FixtureRequest) -> Iterator[str]:
        with scanning(request.param, *registries):
            yield request.param

    return scan
