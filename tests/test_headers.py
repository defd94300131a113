"""gate/headers.py: a rewritten page's Cache-Control and Vary, and the script nonce read from the
origin's CSP. (Their effect on a whole response is in tests/test_proxy.py.)"""

from __future__ import annotations

import pytest

from gate.headers import private_cache_control, script_nonce, vary_cookie


@pytest.mark.parametrize(
    ("upstream_value", "expected"),
    [
        ([], "private"),
        (["no-store"], "private, no-store"),
        (["public, max-age=60"], "private, max-age=60"),
        (['private="set-cookie", no-cache="a, b"', "s-maxage=9"], 'private, no-cache="a, b"'),
    ],
)
def test_private_cache_control(upstream_value: list[str], expected: str) -> None:
    assert private_cache_control(upstream_value) == expected


@pytest.mark.parametrize(
    ("upstream_value", "expected"),
    [
        ([], "Cookie, Accept-Language"),
        (["cookie"], "cookie, Accept-Language"),
        (["*"], "*"),
    ],
)
def test_vary_cookie(upstream_value: list[str], expected: str) -> None:
    assert vary_cookie(upstream_value) == expected


@pytest.mark.parametrize(
    ("policies", "expected"),
    [
        (["script-src 'nonce-a1'"], "a1"),
        (["default-src 'nonce-d1'"], "d1"),
        (["default-src 'nonce-d1'; script-src 'self'"], None),  # script-src wins and has none
        (["img-src *", "script-src 'nonce-x_Y+/='"], "x_Y+/="),
        ([], None),
    ],
)
def test_script_nonce(policies: list[str], expected: str | None) -> None:
    assert script_nonce(policies) == expected
