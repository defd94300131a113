"""Page tokens minted with gate's signer, built once per key set, are the ones itsdangerous's own
serializer mints and checks (a page served before an upgrade keeps counting, and after it)."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from gate import tokens
from gate.tokens import SALT, PageTokens, Rejected

KEYS = ["new-key-0123456789abcdef-0123456789", "old-key-0123456789abcdef-0123456789"]


def fresh() -> URLSafeTimedSerializer:
    """What gate used before: a serializer whose dumps()/loads() build their signer on every call."""
    return URLSafeTimedSerializer(list(reversed(KEYS)), salt=SALT)


def test_a_minted_token_is_the_one_a_fresh_serializer_mints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n: "fixed-nonce")
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.0)
    page = PageTokens(KEYS)
    for path in ["/jobs", '/a"b<c>?q=東京', "/" + "x" * 600]:
        assert page.mint("jobs.example.jp", path) == fresh().dumps(["jobs.example.jp", path[:512], "fixed-nonce"])


def test_tokens_verify_both_ways_between_the_cached_signer_and_a_fresh_one() -> None:
    page = PageTokens(KEYS)
    mine = [page.mint("jobs.example.jp", p) for p in ("/jobs", "/検索?q=1", "/a")]
    # Minted by the cached signer, checked by a fresh serializer.
    assert [fresh().loads(t, max_age=3600)[:2] for t in mine] == [
        ["jobs.example.jp", "/jobs"],
        ["jobs.example.jp", "/検索?q=1"],
        ["jobs.example.jp", "/a"],
    ]
    # Minted by a fresh serializer (also: by the old key only), checked by the cached signer.
    theirs = fresh().dumps(["jobs.example.jp", "/jobs", "n0nce"])
    assert page.check(theirs, "jobs.example.jp", "/jobs").nonce == "n0nce"
    old_only = URLSafeTimedSerializer([KEYS[1]], salt=SALT).dumps(["jobs.example.jp", "/jobs", "n1"])
    assert page.check(old_only, "jobs.example.jp", "/jobs").nonce == "n1"
    # And the same refusals as before: another key, a tampered token, an expired one.
    other = URLSafeTimedSerializer(["another-key-0123456789abcdef"], salt=SALT).dumps(["jobs.example.jp", "/", "x"])
    for bad in (other, mine[0][:-2] + ("AA" if not mine[0].endswith("AA") else "BB")):
        with pytest.raises(Rejected) as e:
            page.check(bad, "jobs.example.jp")
        assert e.value.reason == "bad_token"
    with pytest.raises(Rejected) as e:
        PageTokens(KEYS, max_age=-1).check(mine[0], "jobs.example.jp")
    assert e.value.reason == "expired"
