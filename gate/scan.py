"""`gate scan URL|FILE`: one page as gate would gate it, for marketing and QA before a release.

Every place on the page that would load or run a vendor's tag (found the way a browser reads the page:
html5lib's WHATWG tree builder, scripting off so <noscript> content counts), which tag, vendor and
purposes it maps to, and whether gate keeps or strips it under the given consent (the real rewriter is
run on the page, and the result read again). Then the third-party hosts that no vendor in the registry
declares: every host a loading attribute or CSS names (src, srcset, <link href>, data, poster,
background, ping, SVG href, url() and @import) that is neither the page's own host nor a vendor's.
Links and forms (<a href>, action) are not counted: they send nothing until the visitor acts.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from . import __version__, charset, htmlstream, urls
from .consent import decide
from .errors import ConfigError
from .rewrite import Outcome, PagePlan, PageRewriter
from .transform import ByteTransform
from .vendors import Registry

MAX_BYTES = 16 * 1024 * 1024
FETCH_TIMEOUT = 15.0
HTML = "{http://www.w3.org/1999/xhtml}"
XLINK = "{http://www.w3.org/1999/xlink}href"
DATA_TYPES = {"application/json", "application/ld+json"}
_LOADING = {"src", "data", "poster", "background", XLINK.lower()}
_HREF_LOADS = {"link", "image", "use", "feimage", "script"}


class Ref(NamedTuple):
    """One place on the page that names a URL or holds script text."""

    element: str  # "script", "img", ...
    where: str  # "src", "inline", "onclick", "style url()", ...
    value: str  # the URL or the text, as written
    kind: str  # "url": fetched; "text": run; "link": fetched only if the visitor acts (javascript: runs)


@dataclass
class Place:
    """A place on the page that loads or runs some of the registry's tags."""

    ref: Ref
    tags: frozenset[str]
    kept: bool


@dataclass
class Report:
    source: str
    page_url: str
    charset: str
    consent: str
    allowed: frozenset[str]
    registry: Registry
    places: list[Place] = field(default_factory=list)
    undeclared: dict[str, Counter[str]] = field(default_factory=dict)  # host -> {"img src": 2, ...}
    tag_hosts: dict[str, set[str]] = field(default_factory=dict)  # third-party host a tag loads from -> tags
    leaks: frozenset[str] = frozenset()  # refused tags still live after gating (a bug in gate if any)
    outcome: Outcome | None = None


# -- reading a page as a browser would ----------------------------------------------------------
def _html5lib() -> Any:
    try:
        import html5lib
    except ImportError:  # a dependency of gate; only a broken install lacks it
        raise ConfigError("gate scan", "", "needs the html5lib package: pip install html5lib") from None
    return html5lib


def references(page: str) -> Iterator[Ref]:
    """Every URL and script text in ``page`` that a browser would fetch or run (``srcdoc`` included)."""
    doc = _html5lib().parse(page, treebuilder="etree")
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        ns, _, name = el.tag[1:].partition("}")
        name, svg = name.lower(), ns.endswith("svg")
        if name == "script":
            text = "".join(el.itertext())
            if text.strip() and (el.get("type") or "").strip().lower() not in DATA_TYPES:
                yield Ref(name, "inline", text, "text")
        elif name == "style":
            yield from (Ref(name, "url()", u, "url") for u in htmlstream.css_urls("".join(el.itertext())))
        for key, value in el.attrib.items():
            k = key.lower() if isinstance(key, str) else ""
            if k.startswith("on"):
                yield Ref(name, k, value, "text")
            elif k == "style":
                yield from (Ref(name, "style url()", u, "url") for u in htmlstream.css_urls(value))
            elif k in _LOADING or k == "href" and (name in _HREF_LOADS or svg and name != "a"):
                yield Ref(name, "href" if k == XLINK.lower() else k, value, "url")
            elif k in ("href", "action", "formaction"):
                yield Ref(name, k, value, "link")
            elif k == "srcset":
                for candidate in value.split(","):
                    if parts := candidate.split():
                        yield Ref(name, k, parts[0], "url")
            elif k == "ping":
                yield from (Ref(name, k, u, "url") for u in value.split())
            elif k == "srcdoc":
                yield from (Ref(f"{name} srcdoc > {r.element}", r.where, r.value, r.kind) for r in references(value))
            elif (
                k == "content" and name == "meta" and "=" in value and (el.get("http-equiv") or "").lower() == "refresh"
            ):
                yield Ref(name, "refresh", value.split("=", 1)[1].strip().strip("'\""), "url")


def base_of(page: str, page_url: urls.URL) -> urls.URL:
    """The first <base href>, resolved against the page's URL, as a browser uses it."""
    for el in _html5lib().parse(page, treebuilder="etree").iter():
        if el.tag == HTML + "base" and el.get("href") is not None:
            return urls.parse(el.get("href"), page_url) or page_url
    return page_url


def served_by_gate(page: str) -> bool:
    """Whether ``page`` already went through gate: its injected elements carry ``data-gate``."""
    return any(
        el.get("data-gate") is not None
        for el in _html5lib().parse(page, treebuilder="etree").iter()
        if isinstance(el.tag, str)
    )


def tags_of(ref: Ref, registry: Registry, base: urls.URL) -> frozenset[str]:
    if ref.kind == "text":
        return registry.tags_in_text(ref.value)
    u = urls.parse(ref.value, base)
    if u is None:
        return frozenset()
    if u.scheme in ("javascript", "data"):
        return registry.tags_in_text(ref.value)
    return registry.tags_for_url(u) if ref.kind == "url" else frozenset()


# -- the scan -------------------------------------------------------------------------------------
def parse_consent(spec: str, registry: Registry) -> frozenset[str]:
    """The purposes ``accept_all``, ``reject_all`` or ``purposes=a,b`` accepts; ConfigError otherwise."""
    if spec == "accept_all":
        return frozenset(registry.refusable)
    if spec == "reject_all":
        return frozenset()
    if spec.startswith("purposes="):
        named = [p.strip() for p in spec.removeprefix("purposes=").split(",") if p.strip()]
        unknown = [p for p in named if p not in registry.purposes]
        if unknown:
            raise ConfigError(
                "command line", "--consent", f"unknown purpose '{unknown[0]}' (known: {', '.join(registry.purposes)})"
            )
        return frozenset(named)
    raise ConfigError("command line", "--consent", f"expected accept_all, reject_all or purposes=a,b, got {spec!r}")


def gate_page(page: bytes, codec: str, plan: PagePlan) -> tuple[bytes, Outcome]:
    """The page as gate sends it (without banner or stubs), and what the rewriter met."""
    rewriter = PageRewriter(plan, codec if charset.is_ascii_compatible(codec) else "utf-8")
    stream: ByteTransform = rewriter if charset.is_ascii_compatible(codec) else charset.Transcoder(rewriter, codec)
    return stream.feed(page) + stream.close(), rewriter.outcome


def scan(
    page: bytes,
    page_url: str,
    registry: Registry,
    consent: str = "reject_all",
    content_type: str | None = None,
    source: str | None = None,
) -> Report:
    """Scan ``page`` (bytes as served at ``page_url``) under ``consent`` (see parse_consent)."""
    parsed_url = urls.parse(page_url)
    if parsed_url is None:
        raise ConfigError("command line", "--base", f"expected an absolute URL, got {page_url!r}")
    codec = charset.sniff(content_type, page[: charset.PRESCAN_BYTES])
    accepted = parse_consent(consent, registry)
    allowed = decide(registry, accepted).allowed_tags(registry)
    gated, outcome = gate_page(page, codec, PagePlan(registry=registry, allowed=allowed, base_url=parsed_url))
    before, after = page.decode(codec, "replace"), gated.decode(codec, "replace")
    if served_by_gate(before):  # its refused tags are gone already: a scan would find none and mislead
        raise ConfigError(
            source or page_url,
            "",
            "this page was served through gate (it carries gate's "
            "data-gate elements), so refused tags are already stripped: scan the origin's URL",
        )
    report = Report(source or page_url, page_url, codec, consent, allowed, registry, outcome=outcome)

    base, base_after = base_of(before, parsed_url), base_of(after, parsed_url)
    live_refs = [(r, tags) for r in references(after) if (tags := tags_of(r, registry, base_after))]
    survivors = Counter(r for r, _ in live_refs)
    for ref in references(before):
        tags = tags_of(ref, registry, base)
        if tags:
            kept = survivors[ref] > 0
            survivors[ref] -= kept
            report.places.append(Place(ref, tags, kept))
            u = urls.parse(ref.value, base) if ref.kind == "url" else None
            if u is not None and u.scheme in ("http", "https", "ws", "wss") and u.host and u.host != parsed_url.host:
                report.tag_hosts.setdefault(u.host, set()).update(tags)
        elif ref.kind == "url":
            u = urls.parse(ref.value, base)
            if u is not None and u.scheme in ("http", "https", "ws", "wss") and u.host and u.host != parsed_url.host:
                report.undeclared.setdefault(u.host, Counter())[f"{ref.element} {ref.where}"] += 1
    report.leaks = frozenset({t for _, tags in live_refs for t in tags} - allowed)
    return report


# -- input ----------------------------------------------------------------------------------------
def read(target: str, base: str | None = None) -> tuple[bytes, str, str | None]:
    """(body, page URL, Content-Type) of an http(s) URL or a file; ConfigError when unreadable."""
    if "://" in target:
        scheme = target.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ConfigError("command line", "URL", f"expected an http:// or https:// URL or a file, got {target!r}")
        return _fetch(target)
    path = Path(target)
    try:
        body = path.read_bytes()
    except OSError as e:
        raise ConfigError(target, "", f"cannot read: {e.strerror}") from None
    return body, base or path.resolve().as_uri(), None


def _fetch(url: str) -> tuple[bytes, str, str | None]:
    import httpx

    try:
        with (
            httpx.Client(
                follow_redirects=True, timeout=FETCH_TIMEOUT, headers={"user-agent": f"gate-scan/{__version__}"}
            ) as client,
            client.stream("GET", url) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ConfigError(url, "", f"page larger than {MAX_BYTES} bytes")
            if "gate-tags" in response.headers:
                raise ConfigError(
                    url,
                    "",
                    "this page was served through gate (its response has a Gate-Tags "
                    "header), so refused tags are already stripped: scan the origin's URL",
                )
            return bytes(body), str(response.url), response.headers.get("content-type")
    except httpx.HTTPError as e:
        raise ConfigError(url, "", f"cannot fetch: {type(e).__name__}: {e}") from None


# -- output ---------------------------------------------------------------------------------------
def as_json(report: Report) -> dict[str, Any]:
    registry = report.registry
    return {
        "source": report.source,
        "page_url": report.page_url,
        "charset": report.charset,
        "consent": report.consent,
        "allowed": sorted(report.allowed),
        "tags": [
            {
                "tag": t,
                "vendor": registry.tags[t].vendor,
                "purposes": sorted(registry.tags[t].purposes),
                "result": "kept" if p.kept else "stripped",
                "element": p.ref.element,
                "where": p.ref.where,
                "value": _snippet(p.ref.value, 300),
            }
            for p in report.places
            for t in sorted(p.tags)
        ],
        "summary": {
            "kept": sorted({t for p in report.places if p.kept for t in p.tags}),
            "stripped": sorted({t for p in report.places if not p.kept for t in p.tags}),
            "uncertain": report.outcome.uncertain if report.outcome else 0,
            "leaks": sorted(report.leaks),
        },
        "undeclared_hosts": [
            {"host": h, "count": sum(c.values()), "where": sorted(c)} for h, c in sorted(report.undeclared.items())
        ],
    }


def as_text(report: Report) -> str:
    data = as_json(report)
    allowed = ", ".join(data["allowed"]) or "none"
    lines = [f"{report.source}: charset {report.charset}, consent {report.consent} (tags allowed: {allowed})", ""]
    rows = [
        (
            t["tag"],
            t["vendor"],
            ",".join(t["purposes"]),
            t["result"],
            f"{t['element']} {t['where']}",
            _snippet(t["value"], 60),
        )
        for t in data["tags"]
    ]
    lines.append(f"Tags found: {len(rows)} in {len(report.places)} places")
    if rows:
        lines += table(("TAG", "VENDOR", "PURPOSES", "RESULT", "WHERE", "FOUND"), rows)
    s = data["summary"]
    lines += ["", f"kept: {', '.join(s['kept']) or '-'}", f"stripped: {', '.join(s['stripped']) or '-'}"]
    if s["uncertain"]:
        lines.append(f"stripped as uncertain (read two ways, or past carry_over_bytes): {s['uncertain']}")
    if s["leaks"]:
        lines.append(f"LEAK: refused tags still live after gating: {', '.join(s['leaks'])}")
    hosts = data["undeclared_hosts"]
    lines += ["", f"Third-party hosts no vendor declares: {len(hosts)}"]
    if hosts:
        lines += table(
            ("HOST", "PLACES", "WHERE"), [(h["host"], str(h["count"]), ", ".join(h["where"])) for h in hosts]
        )
    return "\n".join(lines)


def table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Plain-text columns, aligned by display width (East Asian wide characters count two)."""
    widths = [max(_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(row: tuple[str, ...]) -> str:
        cells = [c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        return "  ".join(cells).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def dumps(report: Report) -> str:
    return json.dumps(as_json(report), ensure_ascii=False, indent=2)
