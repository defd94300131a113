"""Renders the banner, the settings link and the footer link (INTERFACE STUB, being written)."""

from __future__ import annotations

from .consent import Consent
from .vendors import Registry


def render_banner(registry: Registry, consent: Consent, *, lang: str, next_path: str, policy_url: str,
                  carried: frozenset[str], nonce: str | None = None) -> str:
    return '<div data-gate role="dialog" aria-label="Cookie">banner</div>'


def render_settings_link(*, lang: str, next_path: str) -> str:
    return '<a data-gate href="/_gate/preferences">Cookie設定</a>'


def render_footer_link(*, lang: str) -> str:
    return '<a data-gate href="/_gate/notice">外部送信について</a>'
