"""Per-response gate: keeps or strips each vendor tag, injects the banner. (INTERFACE STUB: the real
streaming implementation lands next; the interface below is fixed.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import urls
from .vendors import Registry


@dataclass(frozen=True)
class PagePlan:
    """What one response's rewrite needs, fixed before the first byte."""

    registry: Registry
    allowed: frozenset[str]  # tag ids let through for this visitor on this site
    base_url: urls.URL  # the page's public URL, for relative URLs
    head_html: str = ""  # injected first in <head> (stubs, consent defaults)
    body_html: str = ""  # injected before </body> (banner or settings link, footer link)
    carry_over: int = 256 * 1024
    gating: bool = True  # False: pass through untouched (benchmark baseline)


@dataclass
class Outcome:
    kept: set[str] = field(default_factory=set)
    stripped: set[str] = field(default_factory=set)
    uncertain: int = 0
    personal_data: set[str] = field(default_factory=set)

    def header(self) -> str:
        """The Gate-Tags header value: ``kept=a,b; stripped=c; uncertain=N``."""
        parts = [f"kept={','.join(sorted(self.kept))}", f"stripped={','.join(sorted(self.stripped))}"]
        if self.uncertain:
            parts.append(f"uncertain={self.uncertain}")
        return "; ".join(parts)


class PageRewriter:
    """feed(bytes) -> bytes, close() -> bytes; ``encoding`` is a Python codec name."""

    def __init__(self, plan: PagePlan, encoding: str = "utf-8") -> None:
        self.plan, self.encoding = plan, encoding
        self.outcome = Outcome()
        self._buf = b""

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        return b""

    def close(self) -> bytes:
        out, body = self._buf, self.plan.body_html.encode(self.encoding, "xmlcharrefreplace")
        i = out.lower().rfind(b"</body")
        return out[:i] + body + out[i:] if i >= 0 else out + body
