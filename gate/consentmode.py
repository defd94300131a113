"""Google Consent Mode v2: the consent defaults Google's tags read before they do anything.

Whenever any Google tag is let through, the page gets (after the guard, before the stubs and before
any page script)::

    window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}
    gtag('consent','default',{analytics_storage:'granted',ad_storage:'denied',…});
    dataLayer.push({event:'gate_consent',gate_purposes:['improvement','security']})

computed from the verified consent cookie: analytics_storage <- improvement; ad_storage and
ad_user_data <- advertising; ad_personalization <- advertising AND suggestions;
functionality_storage <- content; security_storage always granted. The gate_consent event lets GTM
triggers follow the visitor's purposes. Defining gtag() here is right: it is how gtag.js is
bootstrapped, and only when a Google tag is allowed. Nothing like it is ever done for fbq, whose
loader returns early when fbq already exists.

The state is final when the page is sent (gate decided it on the server), so there is no
wait_for_update and no 'update' call: a new choice reloads the page. GTM containers that use a
renamed dataLayer (``l=`` in the loader) do not see these; the README says so.

Core module: no starlette, no httpx.
"""

from __future__ import annotations

from .consent import Consent
from .guard import script_json
from .vendors import Registry

GOOGLE = "google"
# Consent Mode type -> the purposes that must all be accepted for it to be granted.
TYPES = {
    "ad_storage": ("advertising",),
    "ad_user_data": ("advertising",),
    "ad_personalization": ("advertising", "suggestions"),
    "analytics_storage": ("improvement",),
    "functionality_storage": ("content",),
    "security_storage": (),
}


def google_allowed(registry: Registry, allowed: frozenset[str]) -> bool:
    return any(registry.tags[t].vendor == GOOGLE for t in allowed if t in registry.tags)


def defaults(registry: Registry, consent: Consent) -> dict[str, str]:
    """The Consent Mode types as 'granted' or 'denied' for ``consent``."""
    refusable = registry.refusable
    return {
        kind: "granted" if all(consent.allows_purpose(p, refusable) for p in purposes) else "denied"
        for kind, purposes in TYPES.items()
    }


def accepted_purposes(registry: Registry, consent: Consent) -> list[str]:
    """Every purpose the visitor lets through, in vendors.toml order (non-refusable ones included)."""
    return [p for p in registry.purposes if consent.allows_purpose(p, registry.refusable)]


def script(registry: Registry, consent: Consent, allowed: frozenset[str]) -> str:
    """``<script data-gate>`` with the consent defaults; "" when no Google tag is let through."""
    if not google_allowed(registry, allowed):
        return ""
    event = {"event": "gate_consent", "gate_purposes": accepted_purposes(registry, consent)}
    return (
        "<script data-gate>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        f"gtag('consent','default',{script_json(defaults(registry, consent))});"
        f"dataLayer.push({script_json(event)});</script>"
    )
