"""The runtime guard: a small inline script, first in <head>, that stops loads to refused tags' hosts
started by code running after the server gated the HTML (a tag manager injecting the Meta pixel).
static/guard.js is its readable source and says how it hooks the page; it is minified once, here,
at import, and called per response with this visitor's refusals:

- ``h``: refused hosts, matched by whole labels like the server does: the ``hosts`` of every refused
  tag and the ``domains`` of every vendor with a refused tag (an unclaimed URL on a vendor's domain
  counts as all its tags). A host that an ACCEPTED tag also uses (www.googletagmanager.com serves
  GA4's gtag.js and Google Ads' alike) is left out, so the accepted tag keeps working;
- ``p``: for those shared hosts, the refused tags' ``url_patterns``, which tell the two apart as on
  the server (``gtag/js?id=AW-…`` stopped, ``?id=G-…`` let through);
- ``a``: where the site strips undeclared hosts, the hosts that are declared (every vendor's, and the
  site's allow_hosts and csp_hosts): any other host but the page's own (and its subdomains) is stopped,
  the list the rewriter and the CSP follow too.

Limits (the CSP backstop reports these): code in another realm (an about:blank iframe's own fetch),
CSS url()s, WebSocket/EventSource, srcset, and a refused host spelled with character references
inside a document.write string. On a shared host, a URL no refused pattern claims passes (the server
would count it as the host's tag; the CSP allows the host too).

Core module: no starlette, no httpx.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from .csp import Source, pattern_sources, spec_source, tag_sources
from .vendors import Registry, per_consent

log = logging.getLogger("gate.guard")

SOURCE = Path(__file__).resolve().parent / "static" / "guard.js"
# Python regex syntax JavaScript does not read the same way: named groups, inline flags, \A \Z \G.
_NOT_JS = re.compile(r"\(\?(?![:=!]|<[=!])|\\[AZzG]")
_IDENT = re.compile(r"[A-Za-z0-9_$]")


def minify(source: str) -> str:
    """Comments and insignificant whitespace out of guard.js. Not a general JavaScript minifier: it
    relies on the source ending every statement with a semicolon and keeping quotes and spaces out of
    regex literals (guard.js says so at its top)."""
    out: list[str] = []
    i, n, space, line_start = 0, len(source), False, True
    while i < n:
        c = source[i]
        if c in "'\"":
            j = i + 1
            while source[j] != c:
                j += 2 if source[j] == "\\" else 1
            token, i = source[i : j + 1], j + 1
        elif source.startswith("/*", i):
            i, space = source.index("*/", i) + 2, True
            continue
        elif line_start and source.startswith("//", i):
            end = source.find("\n", i)
            i, space = (n if end < 0 else end), True
            continue
        elif c.isspace():
            i, space, line_start = i + 1, True, line_start or c == "\n"
            continue
        else:
            token, i = c, i + 1
        if space and out and _IDENT.match(out[-1][-1]) and _IDENT.match(token[0]):
            out.append(" ")
        out.append(token)
        space = line_start = False
    return "".join(out)


MINIFIED = minify(SOURCE.read_text(encoding="utf-8"))


def _overlap(a: Source, b: Source) -> bool:
    hosts = a.covers(b.host) or b.covers(a.host)
    return hosts and (not a.path or not b.path or a.path.startswith(b.path) or b.path.startswith(a.path))


def refusals(registry: Registry, allowed: frozenset[str]) -> dict[str, Any] | None:
    """The guard's configuration for this consent, or None when nothing is refused."""
    refused = [t for t in registry.tags.values() if t.id not in allowed]
    if not refused and not registry.strip_undeclared:
        return None
    accepted = [s for t in registry.tags.values() if t.id in allowed for s in tag_sources(t)]
    candidates = [spec_source(h) for t in refused for h in t.hosts]
    candidates += [
        spec_source(d) for v in registry.vendors.values() if any(t not in allowed for t in v.tags) for d in v.domains
    ]
    entries = [c for c in dict.fromkeys(candidates) if not any(_overlap(c, a) for a in accepted)]
    entries = [e for e in entries if not any(f != e and not f.path and f.covers(e.host) for f in entries)]
    patterns = []
    for tag in refused:
        for p in tag.url_patterns:
            hosts = pattern_sources(p.pattern)
            if hosts and all(any(not e.path and e.covers(h.host) for e in entries) for h in hosts):
                continue  # its host is refused whole already
            if _NOT_JS.search(p.pattern):
                log.warning(
                    "tag %s: url_pattern %r is not JavaScript regex syntax; the guard skips it", tag.id, p.pattern
                )
                continue
            patterns.append(p.pattern)
    alternation = "|".join(re.escape(e.host) + re.escape(e.path or "/") for e in sorted(entries, key=_order))
    return {"h": alternation, "p": list(dict.fromkeys(patterns)), "a": declared(registry)}


def declared(registry: Registry) -> str:
    """With undeclared = "strip": the hosts a page may reach besides its own, as one alternation (every
    vendor's hosts and domains, refused ones being stopped by ``h`` first, and the site's own third-party
    hosts); "" when undeclared hosts are only reported."""
    if not registry.strip_undeclared:
        return ""
    hosts = {spec_source(h).host for t in registry.tags.values() for h in t.hosts}
    hosts |= {spec_source(d).host for v in registry.vendors.values() for d in v.domains}
    hosts |= set(registry.own_hosts)
    return "|".join(re.escape(h) for h in sorted(hosts))


def _order(s: Source) -> tuple[str, str]:
    return s.host, s.path


@per_consent
def script(registry: Registry, allowed: frozenset[str]) -> str:
    """``<script data-gate>`` with the guard for this consent; "" when nothing is refused."""
    config = refusals(registry, allowed)
    return "" if config is None else f"<script data-gate>{MINIFIED}({script_json(config)});</script>"


def script_json(value: object) -> str:
    """JSON that is safe inside an inline <script>: no "<" (no </script>, no <!--), ASCII only."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")
