"""Asking again: after the re-consent age (182 days by default, never above 13 months), and on any
change of the policy version (even one that only adds a tag: a new recipient is news)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from gate import app as gate_app
from gate import settings, vendors
from gate.consent import COOKIE_NAME, MAX_LIFETIME, ConsentCodec, decide
from gate.errors import ConfigError

from .conftest import KEY, asgi_client, gate_settings

REGISTRY = vendors.load()
DAY = 24 * 3600


def codec(**kw) -> ConsentCodec:
    return ConsentCodec([KEY], max_age=MAX_LIFETIME, **kw)


@pytest.mark.parametrize(("age_days", "decided"), [(0, True), (181, True), (183, False), (400, False)])
def test_a_decision_older_than_the_reconsent_age_is_asked_again(age_days, decided):
    c = codec()
    cookie = c.dumps(decide(REGISTRY, ["improvement"], now=time.time() - age_days * DAY))
    read = c.read(cookie, REGISTRY)
    assert read.decided is decided
    assert read.purposes["improvement"] is decided  # undecided refuses everything in opt-in


def test_the_reconsent_age_is_configurable_and_never_above_13_months():
    assert codec(reconsent_age=30 * DAY).reconsent_after == 30 * DAY
    assert codec(reconsent_age=10_000 * DAY).reconsent_after == MAX_LIFETIME
    old = codec().dumps(decide(REGISTRY, ["improvement"], now=time.time() - 31 * DAY))
    assert not codec(reconsent_age=30 * DAY).read(old, REGISTRY).decided
    assert codec(reconsent_age=60 * DAY).read(old, REGISTRY).decided


def test_the_age_counts_from_the_decision_not_from_when_the_cookie_was_signed():
    # A cookie signed today that carries an old decision time (as a re-signed cookie would) still expires.
    c = codec()
    cookie = c.dumps(decide(REGISTRY, ["improvement"], now=time.time() - 200 * DAY))
    assert not c.read(cookie, REGISTRY).decided


def test_any_policy_version_change_asks_again_even_a_tag_added_for_accepted_purposes():
    c = codec()
    cookie = c.dumps(decide(REGISTRY, REGISTRY.refusable))
    assert c.read(cookie, REGISTRY).decided
    # One more Google tag, for a purpose already accepted: still a new version, so the banner again.
    extra = dataclasses.replace(REGISTRY.tags["google.analytics"], id="google.analytics_extra")
    bigger = vendors.build(REGISTRY.purposes, REGISTRY.vendors, {**REGISTRY.tags, extra.id: extra}, None)
    assert bigger.version != REGISTRY.version
    assert not c.read(cookie, bigger).decided


def test_reconsent_days_setting_defaults_to_182_and_is_validated(tmp_path):
    assert settings.load({}, {}).reconsent_days == 182
    conf = tmp_path / "gate.toml"
    conf.write_text("reconsent_days = 90\n")
    assert settings.load({"config": str(conf)}, {}).reconsent_days == 90
    conf.write_text("reconsent_days = 0\n")
    with pytest.raises(ConfigError, match="reconsent_days"):
        settings.load({"config": str(conf)}, {})


@pytest.mark.anyio
async def test_the_app_reads_an_old_decision_as_undecided():
    app = gate_app.create_app(gate_settings("http://origin.test", reconsent_days=30))
    assert app.state.gate.codec.reconsent_after == 30 * DAY
    registry = app.state.gate.registries[None]
    fresh = app.state.gate.codec.dumps(decide(registry, ["improvement"], now=time.time() - 29 * DAY))
    stale = app.state.gate.codec.dumps(decide(registry, ["improvement"], now=time.time() - 31 * DAY))
    async with asgi_client(app) as client:
        assert (await client.get("/_gate/consent", headers={"cookie": f"{COOKIE_NAME}={fresh}"})).json()["decided"]
        assert not (await client.get("/_gate/consent", headers={"cookie": f"{COOKIE_NAME}={stale}"})).json()["decided"]
