"""The signed consent cookie and THE RULE: a tag passes only when every purpose it serves is accepted
and its vendor is not refused. Anything unreadable or stale reads as undecided, never as an error."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from gate import consent, vendors
from gate.consent import Consent, ConsentCodec

from .conftest import policy_registry

ROOT = Path(__file__).resolve().parent.parent
NEW, OLD = "new-key-0123456789abcdef", "old-key-0123456789abcdef"
DAY = 24 * 3600
EVERY_TAG = frozenset(
    {
        "google.analytics",
        "google.ads",
        "google.floodlight",
        "google.tag_manager",
        "yahoo.ads",
        "yahoo.retargeting",
        "yahoo.tag_manager",
        "criteo.onetag",
        "adjust.web_sdk",
        "facebook.pixel",
        "facebook.catalogue",
    }
)


@pytest.fixture(scope="module")
def registry() -> vendors.Registry:
    return policy_registry()


@pytest.fixture
def codec() -> ConsentCodec:
    return ConsentCodec([NEW])


def decided(registry, *accepted: str, refused: tuple[str, ...] = ()) -> Consent:
    return consent.decide(registry, accepted, vendors_refused=refused, method="banner")


def signed_at(payload: object, key: str, seconds_ago: int) -> str:
    """A cookie signed the way gate signs, but ``seconds_ago`` in the past."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds_ago

    return URLSafeTimedSerializer(key, salt=consent.SALT, signer=PastSigner).dumps(payload)


def payload_of(cookie: str, key: str = NEW) -> object:
    return URLSafeTimedSerializer(key, salt=consent.SALT).loads(cookie)


# -- the cookie -----------------------------------------------------------------------------------
def test_round_trip_keeps_the_whole_decision(registry, codec):
    given = consent.decide(
        registry, ["improvement", "suggestions"], vendors_refused=["criteo", "nobody"], method="page"
    )
    read = codec.read(codec.dumps(given), registry)
    assert read == given
    assert read.decided and read.purposes == {
        "improvement": True,
        "advertising": False,
        "suggestions": True,
        "content": False,
    }
    assert read.vendors_refused == {"criteo"}  # unknown vendor ids are dropped
    assert read.method == "page" and len(read.consent_id) >= 16 and read.decided_at > 0


def test_a_new_decision_keeps_the_consent_id(registry):
    first = decided(registry, "improvement")
    again = consent.decide(registry, [], previous=first)
    assert again.consent_id == first.consent_id
    assert consent.decide(registry, [], previous=consent.undecided(registry)).consent_id != ""


def tampered(cookie: str) -> str:
    i = len(cookie) // 3  # inside the payload
    return cookie[:i] + ("A" if cookie[i] != "A" else "B") + cookie[i + 1 :]


@pytest.mark.parametrize(
    "spoil",
    [
        tampered,
        lambda c: c[:-4],
        lambda c: c[: len(c) // 2],
        lambda c: c.split(".")[0],
        lambda c: "." + c,
        lambda c: c + "x" * 5000,
        lambda c: "",
        lambda c: None,
        lambda c: "not a cookie at all",
        lambda c: "\u3042" * 10,
        lambda c: ConsentCodec(["a-foreign-key-0123456789"]).dumps(Consent("v", True, {})),
    ],
    ids=[
        "tampered",
        "truncated-signature",
        "truncated-half",
        "payload-only",
        "leading-dot",
        "oversized",
        "empty",
        "absent",
        "garbage",
        "non-ascii",
        "foreign-key",
    ],
)
def test_unreadable_cookie_is_undecided(registry, codec, spoil):
    cookie = codec.dumps(decided(registry, *registry.refusable))
    assert codec.read(spoil(cookie), registry) == consent.undecided(registry)


def test_cookie_signed_by_a_foreign_key_is_undecided(registry, codec):
    foreign = ConsentCodec(["someone-elses-key-0123456789"]).dumps(decided(registry, *registry.refusable))
    assert not codec.read(foreign, registry).decided


@pytest.mark.parametrize(
    "payload",
    [
        ["improvement"],
        {"v": "x"},
        {"a": "improvement", "r": [], "t": 1, "id": "x", "m": "banner"},
        {"a": ["improvement"], "r": [], "t": "yesterday", "id": "x", "m": "banner"},
    ],
    ids=["a-list", "missing-fields", "accepted-not-a-list", "time-not-a-number"],
)
def test_validly_signed_but_malformed_payload_is_undecided(registry, codec, payload):
    if isinstance(payload, dict):
        payload = {"v": registry.version, **payload}
    assert codec.read(signed_at(payload, NEW, 0), registry) == consent.undecided(registry)


def test_key_rotation_old_cookies_verify_and_new_cookies_use_the_newest_key(registry):
    old_cookie = ConsentCodec([OLD]).dumps(decided(registry, "improvement"))
    rotated = ConsentCodec([NEW, OLD])  # GATE_SECRET_KEY="new,old": newest first
    assert rotated.read(old_cookie, registry).purposes["improvement"]
    new_cookie = rotated.dumps(decided(registry, "advertising"))
    assert ConsentCodec([NEW]).read(new_cookie, registry).purposes["advertising"]  # signed by the newest
    assert not ConsentCodec([OLD]).read(new_cookie, registry).decided
    assert not ConsentCodec([NEW]).read(old_cookie, registry).decided  # once OLD is retired


@pytest.mark.parametrize(
    ("age_days", "max_age_days", "is_decided"),
    [
        (0, 180, True),
        (179, 180, True),
        (181, 180, False),
        (2, 1, False),
        (380, 5 * 365, True),
        (410, 5 * 365, False),  # 13 months is the cap, whatever is configured
    ],
    ids=["fresh", "just-inside", "expired", "short-lifetime", "long-lifetime-inside-cap", "beyond-13-months"],
)
def test_expiry_follows_max_age_capped_at_13_months(registry, codec, age_days, max_age_days, is_decided):
    payload = payload_of(codec.dumps(decided(registry, "improvement")))
    cookie = signed_at(payload, NEW, age_days * DAY)
    assert ConsentCodec([NEW], max_age=max_age_days * DAY).read(cookie, registry).decided is is_decided


def test_lifetime_is_capped_at_13_months():
    assert ConsentCodec([NEW], max_age=10 * 365 * DAY).lifetime == consent.MAX_LIFETIME
    assert consent.MAX_LIFETIME <= 13 * 31 * DAY
    assert ConsentCodec([NEW], max_age=180 * DAY).lifetime == 180 * DAY


def test_a_new_version_that_changes_every_carried_tag_asks_again(registry, codec):
    cookie = codec.dumps(decided(registry, *registry.refusable))
    changed = dataclasses.replace(
        registry, version=registry.version + "-next", fingerprints={t: "0" * 8 for t in registry.fingerprints}
    )
    assert codec.read(cookie, registry).decided
    assert codec.read(cookie, changed) == consent.undecided(changed)


def test_a_new_version_that_keeps_every_carried_tag_keeps_the_decision_under_its_old_version(registry, codec):
    cookie = codec.dumps(decided(registry, "improvement"))
    reworded = dataclasses.replace(registry, version=registry.version + "-reworded")
    read = codec.read(cookie, reworded)
    assert read.decided and read.version == registry.version and read.purposes["improvement"]


def test_public_shape(registry):
    shape = decided(registry, "improvement", refused=("facebook",)).as_public()
    assert shape == {
        "version": registry.version,
        "decided": True,
        "purposes": {"improvement": True, "advertising": False, "suggestions": False, "content": False},
        "vendors_refused": ["facebook"],
        "personal_data": [],
    }


def test_codec_needs_a_key():
    with pytest.raises(ValueError):
        ConsentCodec([])


# -- THE RULE -------------------------------------------------------------------------------------
ALL = ("improvement", "advertising", "suggestions", "content")


@pytest.mark.parametrize(
    ("accepted", "refused", "allowed"),
    [
        ((), (), set()),
        (ALL, (), EVERY_TAG),
        (("improvement",), (), {"google.analytics"}),
        (("advertising",), (), {"google.ads", "google.floodlight", "yahoo.ads", "facebook.pixel"}),
        (("improvement", "advertising"), (), EVERY_TAG - {"criteo.onetag", "yahoo.retargeting", "facebook.catalogue"}),
        (
            ("advertising", "suggestions"),
            (),
            {
                "google.ads",
                "google.floodlight",
                "yahoo.ads",
                "yahoo.retargeting",
                "criteo.onetag",
                "facebook.pixel",
                "facebook.catalogue",
            },
        ),
        (("suggestions",), (), set()),
        (ALL, ("criteo",), EVERY_TAG - {"criteo.onetag"}),
        (
            ALL,
            ("google", "facebook"),
            {"yahoo.ads", "yahoo.retargeting", "yahoo.tag_manager", "criteo.onetag", "adjust.web_sdk"},
        ),
    ],
    ids=[
        "reject-all",
        "accept-all",
        "improvement-only",
        "advertising-only",
        "improvement+advertising",
        "advertising+suggestions",
        "suggestions-alone-lets-nothing-through",
        "criteo-refused",
        "two-vendors-refused",
    ],
)
def test_a_tag_passes_only_with_every_purpose_and_its_vendor(registry, accepted, refused, allowed):
    assert decided(registry, *accepted, refused=refused).allowed_tags(registry) == allowed


def test_a_tag_with_two_purposes_needs_both(registry):
    criteo = registry.tags["criteo.onetag"]
    assert not decided(registry, "advertising").allows(criteo, registry.refusable)
    assert not decided(registry, "suggestions").allows(criteo, registry.refusable)
    assert decided(registry, "advertising", "suggestions").allows(criteo, registry.refusable)


def test_a_refused_vendor_blocks_its_tags_whatever_the_purposes(registry):
    everything_but_facebook = decided(registry, *ALL, refused=("facebook",))
    assert not everything_but_facebook.allows(registry.tags["facebook.pixel"], registry.refusable)
    assert everything_but_facebook.allows(registry.tags["google.ads"], registry.refusable)


def test_undecided_means_every_refusable_purpose_refused(registry):
    nobody = consent.undecided(registry)
    assert nobody.allowed_tags(registry) == frozenset()
    assert nobody.purposes == {p: False for p in registry.refusable}
    assert nobody.allows_purpose("security", registry.refusable)  # never refusable


def test_a_tag_serving_only_an_always_on_purpose_passes_while_undecided():
    raw = {
        "purposes": {
            "security": {"ja": "セキュリティ確保", "en": "Security", "refusable": False},
            "advertising": {"ja": "広告", "en": "Ads"},
        },
        "vendors": {
            "acme": {
                "recipient": "Acme",
                "tags": [
                    {"id": "acme.captcha", "service_ja": "x", "service_en": "x", "purposes": ["security"]},
                    {"id": "acme.ads", "service_ja": "x", "service_en": "x", "purposes": ["security", "advertising"]},
                ],
            }
        },
    }
    registry = vendors.parse(raw)
    assert consent.undecided(registry).allowed_tags(registry) == {"acme.captcha"}


def test_carried_tags_limit_what_a_site_lets_through(registry):
    assert decided(registry, *ALL).allowed_tags(registry, carried=["google.analytics", "criteo.onetag"]) == {
        "google.analytics",
        "criteo.onetag",
    }


def test_opt_out_mode_allows_while_undecided(registry):
    assert consent.undecided(registry, opt_out_mode=True).allowed_tags(registry) == EVERY_TAG


def test_opt_out_mode_respects_a_decision(registry):
    choice = dataclasses.replace(decided(registry, "improvement"), opt_out_mode=True)
    assert choice.allowed_tags(registry) == {"google.analytics"}


def test_gpc_in_opt_out_mode_refuses_advertising_and_suggestions(registry):
    gpc = consent.undecided(registry, gpc=True, opt_out_mode=True)
    assert gpc.allowed_tags(registry) == {"google.analytics"}  # improvement only: every other tag advertises


def test_gpc_in_opt_in_mode_changes_nothing_while_undecided(registry):
    assert consent.undecided(registry, gpc=True).allowed_tags(registry) == frozenset()


def test_read_carries_gpc_and_mode_into_the_undecided_state(registry, codec):
    assert codec.read(None, registry, gpc=True, opt_out_mode=True) == consent.undecided(
        registry, gpc=True, opt_out_mode=True
    )
