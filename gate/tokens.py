"""Page tokens: what a beacon or a CSP report must carry to be counted.

gate mints one token for every page it rewrites, signed with the app's secret key (itsdangerous),
naming the site and the path it was served for and a random nonce. The page carries it (a
``<meta name="gate-token">`` the beacon script and the guard read, and the CSP ``report-uri``), and
``/_gate/beacon`` and ``/_gate/csp-report`` count a submission only with a token that is genuine,
younger than MAX_AGE, for the same site (and, for a beacon, the same page path). gate.limits makes
sure each token counts once. A forged ``Origin`` is free; a token needs a page that gate served.

Stdlib and itsdangerous only: no server library.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

SALT = "gate.page-token"
MAX_AGE = 3600  # seconds: a page left open for longer sends its beacon unheard
QUERY = "t"  # /_gate/beacon?t=… and /_gate/csp-report?t=…
SHORT = 128  # bytes of payload up to which minting does not try zlib (see PageTokens.mint)


class Rejected(Exception):
    """A submission that is not counted; ``reason`` is what the report shows (one word)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class PageToken:
    site: str
    path: str
    nonce: str


class PageTokens:
    """Mints and checks tokens; ``secret_keys`` newest first, like the consent cookie's."""

    def __init__(self, secret_keys: Sequence[str], max_age: int = MAX_AGE) -> None:
        self.max_age = max_age
        # itsdangerous wants oldest -> newest and signs with the last one.
        self._serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=SALT)
        # The serializer's dumps()/loads() build a new TimestampSigner on every call; this one is
        # built once per key set and does what they do with theirs (same payload, same signature).
        signer = self._serializer.make_signer(SALT)
        assert isinstance(signer, TimestampSigner)
        self._signer = signer

        # Minting is on every page's path, so it is done here by hand, in the format the signer
        # checks: base64(JSON) "." base64(timestamp) "." base64(HMAC of the two), the HMAC keyed once
        # with the signer's derived key (tests/test_tokens.py checks minted tokens with itsdangerous).
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)

    def mint(self, site: str, path: str) -> str:
        payload = json.dumps(
            [site, path[:512], secrets.token_urlsafe(9)], separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        # Packed as the serializer packs it when that makes it shorter, but only past SHORT bytes: a short
        # payload seldom gets shorter, and zlib allocates and touches ~256 KB of state on every call
        # (unpacked, the token still reads the same: the serializer reads both forms).
        packed = zlib.compress(payload) if len(payload) > SHORT else payload
        encoded = b"." + base64_encode(packed) if len(packed) < len(payload) - 1 else base64_encode(payload)
        value = encoded + b"." + base64_encode(int_to_bytes(int(time.time())))
        mac = self._mac.copy()
        mac.update(value)
        return (value + b"." + base64_encode(mac.digest())).decode("ascii")

    def check(self, token: str | None, site: str, path: str | None = None) -> PageToken:
        """The token's contents; Rejected("no_token" | "expired" | "bad_token" | "wrong_site" | "wrong_page")."""
        if not token:
            raise Rejected("no_token")
        try:
            signed = self._signer.unsign(token[:1024].encode("utf-8"), max_age=self.max_age)
            value = self._serializer.load_payload(signed)
        except SignatureExpired:
            raise Rejected("expired") from None
        except BadData:
            raise Rejected("bad_token") from None
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
            raise Rejected("bad_token")
        found = PageToken(*value)
        if found.site != site:
            raise Rejected("wrong_site")
        if path is not None and found.path != path[:512]:
            raise Rejected("wrong_page")
        return found
