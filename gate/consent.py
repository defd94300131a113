"""The visitor's choice, kept in one signed cookie.

read() never raises: a tampered, truncated, foreign-key, expired or old-version cookie reads as
"undecided" (the banner again), like starlette's session middleware treats a bad signature. So does a
decision older than the re-consent age (182 days by default, never above 13 months): the visitor is
asked again.

Versions are per site (Registry.for_site): they hash what the site carries and what its banner and
notice say. The cookie keeps, per tag the decision covered, that tag's fingerprint (recipient, what
is sent, purposes). Read under a newer version, a decision still covers the tags whose fingerprint is
unchanged; any other carried tag (a new recipient, a widened purpose) is undecided, so the banner
shows again naming it, and in opt-in mode it stays stripped until the visitor answers. A version
change that leaves every carried tag covered (a removed tag, new wording of the banner) keeps the
decision under the version it was given.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from .vendors import PerRegistry, Registry, Tag

COOKIE_NAME = "gate_consent"
SALT = "gate.consent.v1"
METHODS = ("banner", "page", "api", "gpc")
MAX_LIFETIME = 13 * 31 * 24 * 3600  # the cookie never outlives 13 months, whatever is configured


@dataclass(frozen=True)
class Consent:
    """One visitor's state. ``purposes`` holds every refusable purpose, True when accepted."""

    version: str
    decided: bool
    purposes: Mapping[str, bool]
    vendors_refused: frozenset[str] = frozenset()
    decided_at: int = 0
    consent_id: str = ""
    method: str = ""
    gpc: bool = False  # undecided, but Sec-GPC asked us to refuse advertising and suggestions
    opt_out_mode: bool = False  # the site runs in opt-out mode: undecided means allowed
    coverage: Mapping[str, str] = field(default_factory=dict)  # tag -> fingerprint the decision covered
    # A decision made under an older version: the carried tags it still covers (the rest are undecided).
    # None: no earlier decision, or one that covers every tag the site carries.
    covered: frozenset[str] | None = None
    # Recipients the visitor separately agreed may receive what they type into application forms
    # (APPI art. 27/31). Never implied by "accept all": only a ticked line of its own grants it.
    personal_data: frozenset[str] = frozenset()

    @property
    def renewing(self) -> bool:
        """An earlier decision that no longer covers every carried tag: the banner asks again."""
        return not self.decided and self.covered is not None

    def allows_purpose(self, purpose: str, refusable: Sequence[str]) -> bool:
        if purpose not in refusable:
            return True
        if not self.decided and self.opt_out_mode and self.covered is None:
            return not (self.gpc and purpose in ("advertising", "suggestions"))
        return self.purposes.get(purpose, False)

    def allows(self, tag: Tag, refusable: Sequence[str]) -> bool:
        """THE RULE: every purpose the tag serves accepted, and its vendor not refused. A tag an
        earlier decision did not cover is undecided: refused in opt-in mode; in opt-out mode the
        earlier refusals still hold for it."""
        if tag.vendor in self.vendors_refused:
            return False
        if self.covered is not None and tag.id not in self.covered and not self.opt_out_mode:
            return False
        return all(self.allows_purpose(p, refusable) for p in tag.purposes)

    def allowed_tags(self, registry: Registry, carried: Iterable[str] | None = None) -> frozenset[str]:
        """The tags THE RULE lets through (among ``carried``, when given). Asked for every page: the
        answer is remembered per registry and per what the rule reads of this consent."""
        carried_set = carried if isinstance(carried, frozenset) or carried is None else frozenset(carried)
        key = (
            carried_set,
            self.decided,
            self.opt_out_mode,
            self.gpc,
            self.covered,
            self.vendors_refused,
            tuple(self.purposes.items()),
        )

        def work_out() -> frozenset[str]:
            refusable = registry.refusable
            return frozenset(
                t.id
                for t in registry.tags.values()
                if (carried_set is None or t.id in carried_set) and self.allows(t, refusable)
            )

        return _allowed.get(registry, key, work_out)

    def as_public(self) -> dict[str, Any]:
        """The GET /_gate/consent shape."""
        return {
            "version": self.version,
            "decided": self.decided,
            "purposes": dict(self.purposes),
            "vendors_refused": sorted(self.vendors_refused),
            "personal_data": sorted(self.personal_data),
        }


# allowed_tags' answers, per registry and per (carried, what THE RULE reads of a consent)
_allowed: PerRegistry[frozenset[str]] = PerRegistry()


def undecided(registry: Registry, *, gpc: bool = False, opt_out_mode: bool = False) -> Consent:
    return Consent(registry.version, False, {p: False for p in registry.refusable}, gpc=gpc, opt_out_mode=opt_out_mode)


def shown_purposes(registry: Registry) -> tuple[str, ...]:
    """The refusable purposes the banner offers: those a carried tag serves. Only these can be
    accepted (a visitor cannot agree to a purpose never put in front of them)."""
    used = {p for t in registry.carried_tags for p in registry.tags[t].purposes}
    return tuple(p for p in registry.refusable if p in used)


def decide(
    registry: Registry,
    accepted: Iterable[str],
    *,
    vendors_refused: Iterable[str] = (),
    method: str = "banner",
    previous: Consent | None = None,
    now: float | None = None,
    personal_data: Iterable[str] = (),
) -> Consent:
    """A fresh decision, covering every tag the registry's site carries. Only purposes the site shows
    are accepted. Unknown ids are the caller's to reject before this point."""
    accepted = set(accepted) & set(shown_purposes(registry))
    keep_id = previous.consent_id if previous is not None and (previous.decided or previous.renewing) else ""
    return Consent(
        version=registry.version,
        decided=True,
        purposes={p: p in accepted for p in registry.refusable},
        vendors_refused=frozenset(vendors_refused) & set(registry.vendors),
        decided_at=int(now if now is not None else time.time()),
        consent_id=keep_id or secrets.token_urlsafe(12),
        method=method if method in METHODS else "api",
        coverage=dict(registry.fingerprints),
        personal_data=frozenset(personal_data) & form_recipients(registry),
    )


def form_recipients(registry: Registry) -> frozenset[str]:
    """The vendors with a carried tag that reads forms: those a personal-data consent can name."""
    return frozenset(registry.tags[t].vendor for t in registry.carried_tags if registry.tags[t].reads_forms)


@dataclass(frozen=True)
class ConsentCodec:
    """Signs and verifies the cookie. ``secret_keys`` newest first: the newest signs, all verify."""

    secret_keys: Sequence[str]
    max_age: int = 180 * 24 * 3600
    reconsent_age: int = 182 * 24 * 3600  # a decision older than this is asked again
    _serializer: URLSafeTimedSerializer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.secret_keys:
            raise ValueError("at least one secret key is needed")
        # itsdangerous wants oldest -> newest and signs with the last one.
        object.__setattr__(self, "_serializer", URLSafeTimedSerializer(list(reversed(self.secret_keys)), salt=SALT))

    @property
    def lifetime(self) -> int:
        return min(self.max_age, MAX_LIFETIME)

    @property
    def reconsent_after(self) -> int:
        """Seconds after the decision that the visitor is asked again (never more than 13 months)."""
        return min(self.reconsent_age, MAX_LIFETIME)

    def dumps(self, consent: Consent) -> str:
        payload = {
            "v": consent.version,
            "a": sorted(p for p, ok in consent.purposes.items() if ok),
            "r": sorted(consent.vendors_refused),
            "t": consent.decided_at,
            "id": consent.consent_id,
            "m": consent.method,
            "c": dict(consent.coverage),
            "p": sorted(consent.personal_data),
        }
        return self._serializer.dumps(payload)

    def read(self, value: str | None, registry: Registry, *, gpc: bool = False, opt_out_mode: bool = False) -> Consent:
        """The visitor's consent; anything unreadable or stale is undecided. Never raises."""
        fallback = undecided(registry, gpc=gpc, opt_out_mode=opt_out_mode)
        if not value or len(value) > 4096:
            return fallback
        try:
            data = self._serializer.loads(value, max_age=self.lifetime)
        except (BadData, ValueError, TypeError, json.JSONDecodeError, UnicodeError):
            return fallback
        if not isinstance(data, dict) or not isinstance(version := data.get("v"), str):
            return fallback
        coverage, covered = _coverage(data.get("c"), registry)
        if version != registry.version and not covered:
            return fallback
        accepted, refused = data.get("a"), data.get("r")
        decided_at, cid, method = data.get("t"), data.get("id"), data.get("m")
        if not (
            isinstance(accepted, list)
            and isinstance(refused, list)
            and isinstance(decided_at, int)
            and isinstance(cid, str)
            and isinstance(method, str)
        ):
            return fallback
        if time.time() - decided_at > self.reconsent_after:
            return fallback  # time to ask again, even if the cookie itself lives longer
        refusable = registry.refusable
        whole = version == registry.version or covered >= registry.carried_tags
        return Consent(
            version=version[:64],
            decided=whole,
            purposes={p: p in accepted for p in refusable},
            vendors_refused=frozenset(v for v in refused if isinstance(v, str) and v in registry.vendors),
            decided_at=decided_at,
            consent_id=cid[:64],
            method=method if method in METHODS else "api",
            gpc=gpc,
            opt_out_mode=opt_out_mode,
            coverage=coverage,
            covered=None if whole else covered,
            personal_data=_vendor_ids(data.get("p"), registry),
        )


def _vendor_ids(raw: object, registry: Registry) -> frozenset[str]:
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(v for v in raw if isinstance(v, str) and v in registry.vendors)


def _coverage(raw: object, registry: Registry) -> tuple[dict[str, str], frozenset[str]]:
    """(the cookie's tag fingerprints, the carried tags whose fingerprint still matches)."""
    if not isinstance(raw, dict):
        return {}, frozenset()
    coverage = {t: fp for t, fp in raw.items() if isinstance(t, str) and isinstance(fp, str)}
    prints = registry.fingerprints
    return coverage, frozenset(t for t, fp in coverage.items() if prints.get(t) == fp)
