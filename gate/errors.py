"""The small error tree of gate.

GateError                 base
  ConfigError             a bad gate.toml / vendors.toml / flag / environment value
                          -> at start-up: one line on stderr, exit code 2 (never an HTTP status)
  UpstreamError           the origin could not be reached or answered badly
    UpstreamUnavailable   refused, reset, DNS failure, bad response      -> 502 Bad Gateway
    UpstreamTimeout       no answer within the configured timeout        -> 504 Gateway Timeout
    IncompleteBody        the body cannot be delivered whole: its coding ends early or is
                          corrupt (``reason``: truncated, corrupt)       -> 502 before the first
                          byte went out; after it, the visitor's response is cut (never ended)
      PageTooLarge        a page decodes to more than max_page_bytes     -> same as its parent
  RequestError            the visitor's request is unacceptable          -> its ``status``
                          (400 bad form/JSON, 403 foreign origin, 413 too large, 421 unknown host,
                          429 too many, 503 a receipt that cannot be kept; the last two with
                          ``retry_after`` seconds for a Retry-After header)
  StoreError              the ledger's store cannot be opened or written (gate.recording.store)
                          -> the recorder keeps its batch and retries; the report says so
"""

from __future__ import annotations


class GateError(Exception):
    """Base class of every error gate raises on purpose."""


class ConfigError(GateError):
    """A configuration mistake; ``str()`` is the one line shown to the operator."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file, self.key, self.message = file, key, message
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + message)


class UpstreamError(GateError):
    status = 502


class UpstreamUnavailable(UpstreamError):
    status = 502


class UpstreamTimeout(UpstreamError):
    status = 504


class IncompleteBody(UpstreamError):
    """The origin's body cannot be delivered whole; ``reason`` (a metrics label) says why."""

    status = 502

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


class PageTooLarge(IncompleteBody):
    """A page decodes to more bytes than ``max_page_bytes``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__("too_large", f"the page decodes to more than max_page_bytes ({limit:,} bytes)")


class RequestError(GateError):
    """A bad request from a client; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        self.status, self.message, self.retry_after = status, message, retry_after
        super().__init__(f"{status}: {message}")

    @property
    def headers(self) -> dict[str, str]:
        """What the answer carries besides the message: never cached, and when to come back."""
        out = {"cache-control": "no-store"}
        if self.retry_after is not None:
            out["retry-after"] = str(self.retry_after)
        return out
