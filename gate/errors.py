"""The small error tree of gate.

    GateError                 base
      ConfigError             a bad gate.toml / vendors.toml / flag / environment value
                              -> at start-up: one line on stderr, exit code 2 (never an HTTP status)
      UpstreamError           the origin could not be reached or answered badly
        UpstreamUnavailable   refused, reset, DNS failure, bad response      -> 502 Bad Gateway
        UpstreamTimeout       no answer within the configured timeout        -> 504 Gateway Timeout
      RequestError            the visitor's request is unacceptable          -> its ``status``
                              (400 bad form/JSON, 403 foreign origin, 413 too large, 421 unknown host)
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


class RequestError(GateError):
    """A bad request from a client; carries the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"{status}: {message}")
