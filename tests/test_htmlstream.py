"""gate.htmlstream: the end of script data found the same whatever the chunks, in Python and in C."""

from __future__ import annotations

import pytest

from gate import htmlstream as hs

try:
    from gate import _fastscan
except ImportError:  # pragma: no cover - the C extension is optional
    _fastscan = None

SCANS = [
    pytest.param(hs.script_end_py, id="python"),
    pytest.param(
        getattr(_fastscan, "script_end", None),
        id="c",
        marks=pytest.mark.skipif(_fastscan is None, reason="the C extension is not built"),
    ),
]
# "<!-->" and "<!--->" end the escape they open: cut right after "<!--", the scan used to settle on
# "escaped" and never find the end (found by the property tests: the rest of the page was removed).
SCRIPTS = [
    b"<script><!--><script>gtag(1)</script><a>",
    b"<script><!---><script>x</script><a>",
    b"<script><!--<script>x</script>y--></script><a>",
    b"<script>a<!--b</script><a>",
]


def scan_in_pieces(scan, data: bytes, cut: int) -> int:
    idx, state, resume = scan(data[:cut], 8, hs.SCRIPT_NORMAL)
    if idx >= 0:
        return idx
    return scan(data, resume, state)[0]


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("data", SCRIPTS)
def test_script_end_is_found_whatever_the_cut(scan, data):
    whole = scan(data, 8, hs.SCRIPT_NORMAL)[0]
    assert whole > 0
    for cut in range(8, len(data) + 1):
        assert scan_in_pieces(scan, data, cut) == whole, cut
