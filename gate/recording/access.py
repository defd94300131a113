"""Who may read what gate recorded: /_gate/report (.json, .csv), /_gate/metrics and /_gate/receipts/<id>
all need the report token: ``Authorization: Bearer <token>``, or basic auth with the token as password
(any user name, so a browser can just ask). 401 otherwise, and always while no token is configured.

One module of its own so that the report, the metrics and the receipts share the guard without
importing each other (no import cycles: tests/test_layers.py).
"""

from __future__ import annotations

import base64
import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..context import gate_of

# Every answer about the recordings: never cached, never sniffed, never sent on as a referrer.
HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def unauthorized(request: Request) -> Response | None:
    """None when the request carries the report token (bearer, or basic-auth password); else the 401."""
    token = gate_of(request).settings.report_token
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = credentials.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            given = ""
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    why = "a report token is needed" if token else "no report_token is configured (GATE_REPORT_TOKEN)"
    response = PlainTextResponse(f"401 Unauthorized: {why}.\n", 401, headers=HEADERS)
    response.headers.append("www-authenticate", 'Basic realm="gate report", charset="UTF-8"')
    response.headers.append("www-authenticate", 'Bearer realm="gate report"')
    return response
