"""`gate init URL`: crawl a site (bounded), find its tags and third-party hosts with gate scan's reader,
and draft the gate.toml that declares them.

Without ``vendors``/``tags`` a site is said to carry every tag in vendors.toml, so its banner and notice
name every company. The draft names only what the pages carried. The crawl stays on the start URL's
origin (scheme, host, port), reads /sitemap.xml, and stops at ``max_pages`` pages, ``max_seconds`` and
``max_bytes`` in all, whichever comes first. Each page is scanned as it arrived, never through gate.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urljoin, urlsplit

from . import __version__, scan, urls
from .errors import ConfigError
from .vendors import Registry

if TYPE_CHECKING:
    import httpx

MAX_PAGES, MAX_SECONDS, MAX_BYTES = 30, 60.0, 32 * 1024 * 1024
MAX_SITEMAPS = 5
_LOC = re.compile(r"<loc>\s*([^<\s]+)\s*</loc>", re.I)
_POLICY_WORDS = ("プライバシー", "個人情報", "privacy")
_HTML = ("text/html", "application/xhtml+xml")


@dataclass
class Crawl:
    """What the pages of one site carried."""

    start: str
    pages: list[str] = field(default_factory=list)  # paths scanned
    tags: dict[str, Counter[str]] = field(default_factory=dict)  # tag -> {path: places}
    hosts: dict[str, Counter[str]] = field(default_factory=dict)  # undeclared host -> {path: places}
    # every third-party host met (a vendor's or undeclared) -> {path: places}, and the vendors of those a
    # vendor declares (none: gate strips it under undeclared = "strip" unless allow_hosts names it)
    third_party: dict[str, Counter[str]] = field(default_factory=dict)
    host_vendors: dict[str, set[str]] = field(default_factory=dict)
    policy: str | None = None  # the first link that reads as the privacy policy
    stopped_by: str = "every page found"
    skipped: list[str] = field(default_factory=list)  # "url: why"


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc.lower()) == (pb.scheme, pb.netloc.lower())


def crawl(
    start: str,
    registry: Registry,
    max_pages: int = MAX_PAGES,
    max_seconds: float = MAX_SECONDS,
    max_bytes: int = MAX_BYTES,
    sitemap: str | None = None,
) -> Crawl:
    """Scan up to ``max_pages`` same-origin pages from ``start`` (and /sitemap.xml); ConfigError when the
    start page cannot be read or is gate's own output. With ``sitemap`` (a sitemap's URL; ``start`` is
    then ignored) only the pages that sitemap lists on its own origin are read, and no link is followed."""
    import httpx

    if sitemap is not None:
        start = origin_of(sitemap) + "/"
    if not urlsplit(start).path:
        start += "/"  # the same page as the links to "/" name
    result = Crawl(sitemap or start)
    deadline, budget = time.monotonic() + max_seconds, max_bytes
    queue: deque[str] = deque([] if sitemap else [start])
    seen = set(queue)
    declared = registry.with_undeclared((), strip=True)  # judges hosts as the rewriter does
    headers = {"user-agent": f"gate-init/{__version__}"}
    with httpx.Client(follow_redirects=True, timeout=min(scan.FETCH_TIMEOUT, max_seconds), headers=headers) as client:
        for url in _sitemap(client, sitemap or urljoin(start, "/sitemap.xml"), deadline):
            if url not in seen and same_origin(url, start):
                seen.add(url)
                queue.append(url)
        if sitemap and not queue:
            raise ConfigError(sitemap, "", f"lists no page of {start} (or cannot be read)")
        while queue:
            if len(result.pages) >= max_pages:
                result.stopped_by = f"the page limit ({max_pages})"
                break
            if time.monotonic() > deadline:
                result.stopped_by = f"the time limit ({max_seconds:g} s)"
                break
            if budget <= 0:
                result.stopped_by = f"the byte limit ({max_bytes} bytes)"
                break
            url = queue.popleft()
            page = _get(client, url, budget, deadline)
            if isinstance(page, str):
                if url == start and not sitemap:
                    raise ConfigError(start, "", page)
                result.skipped.append(f"{url}: {page}")
                continue
            body, final_url, content_type = page
            budget -= len(body)
            if not same_origin(final_url, start):
                result.skipped.append(f"{url}: redirected off the site, to {final_url}")
                continue
            report = scan.scan(body, final_url, registry, "accept_all", content_type, source=final_url)
            path = urlsplit(final_url).path or "/"
            result.pages.append(path)
            for place in report.places:
                for tag in place.tags:
                    result.tags.setdefault(tag, Counter())[path] += 1
            page_host = urlsplit(final_url).hostname or ""
            for host, where in report.undeclared.items():
                u = urls.parse(f"https://{host}/")
                if u is not None and declared.is_undeclared(u, page_host):
                    result.hosts.setdefault(host, Counter())[path] += sum(where.values())
                    result.third_party.setdefault(host, Counter())[path] += sum(where.values())
            for host, tags in report.tag_hosts.items():
                result.third_party.setdefault(host, Counter())[path] += 1
                result.host_vendors.setdefault(host, set()).update(registry.tags[t].vendor for t in tags)
            if sitemap:
                continue
            text = body.decode(report.charset, "replace")
            for href, label in links(text):
                target = urldefrag(urljoin(final_url, href)).url
                if (
                    result.policy is None
                    and any(w in (label + " " + href).lower() for w in _POLICY_WORDS)
                    and same_origin(target, start)
                ):
                    result.policy = urlsplit(target).path or "/"
                if target not in seen and same_origin(target, start):
                    seen.add(target)
                    queue.append(target)
    return result


def links(page: str) -> list[tuple[str, str]]:
    """(href, text) of every <a href> on the page."""
    doc = scan._html5lib().parse(page, treebuilder="etree")
    return [
        (el.get("href"), " ".join("".join(el.itertext()).split()))
        for el in doc.iter()
        if el.tag == scan.HTML + "a" and el.get("href")
    ]


def _get(client: httpx.Client, url: str, budget: int, deadline: float) -> tuple[bytes, str, str | None] | str:
    """(body, final URL, Content-Type) of an HTML page, or why it was skipped."""
    import httpx

    try:
        with client.stream("GET", url) as response:
            content_type = response.headers.get("content-type")
            if "gate-tags" in response.headers:
                return "served through gate (Gate-Tags header): give the origin's URL, whose pages carry their tags"
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            if (content_type or "text/html").split(";")[0].strip().lower() not in _HTML:
                return f"not a page ({content_type})"
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > min(budget, scan.MAX_BYTES) or time.monotonic() > deadline:
                    return "larger than the bytes or time left"
            return bytes(body), str(response.url), content_type
    except httpx.HTTPError as e:
        return f"cannot fetch: {type(e).__name__}: {e}"


def _sitemap(client: httpx.Client, sitemap: str, deadline: float) -> list[str]:
    """The page URLs a sitemap lists (a sitemap index is followed, at most MAX_SITEMAPS files)."""
    import httpx

    found: list[str] = []
    todo, fetched = [sitemap], 0
    while todo and fetched < MAX_SITEMAPS and time.monotonic() < deadline:
        url, fetched = todo.pop(0), fetched + 1
        try:
            response = client.get(url)
        except httpx.HTTPError:
            continue
        if response.status_code != 200 or len(response.content) > scan.MAX_BYTES:
            continue
        for loc in _LOC.findall(response.text):
            loc = loc.replace("&amp;", "&")
            (todo if loc.lower().endswith(".xml") else found).append(loc)
    return found


# -- the draft -------------------------------------------------------------------------------------------
def draft(result: Crawl, registry: Registry, upstream: str) -> str:
    """gate.toml text declaring what the crawl found, every line commented."""
    vendors = sorted({registry.tags[t].vendor for t in result.tags})
    tags = [t for t in registry.tags if t in result.tags]  # vendors.toml's order
    out = [
        f"# gate.toml drafted by `gate init {result.start}` (gate {__version__}, {dt.date.today().isoformat()}).",
        f"# Read from {len(result.pages)} page(s); the crawl stopped at {result.stopped_by}. Tags that only",
        "# appear after a login, in a tag manager's container or on pages not linked may be missing: check",
        "# with your marketing team, then run `gate check`.",
        f'upstream = "{upstream}"',
        "",
        "[[site]]",
        '# host = "www.example.jp"  # the public name, when gate serves more than one site',
        "# The vendors (vendors.toml ids) whose tags the pages carried. The banner and the notice name only",
        "# these; [] = no tag at all: the banner and the notice name no company.",
        f"vendors = [{', '.join(_q(v) for v in vendors)}]",
        "# The tags found, with the pages they were on. A tag not listed here is stripped from every page.",
    ]
    if tags:
        out.append("tags = [")
        for t in tags:
            pages = result.tags[t]
            out.append(f"  {_q(t)},  # {len(pages)} page(s), e.g. {_example(pages)}")
        out.append("]")
    else:
        out.append("tags = []")
    if result.policy:
        out += [
            "# The privacy policy the notice links to: the page the site's own links call so.",
            f"policy_url = {_q(result.policy)}",
        ]
    else:
        out += [
            "# No link reading as a privacy policy was found: set the page the notice should link to.",
            '# policy_url = "/privacy"',
        ]
    if result.hosts:
        out += ALLOW_HOSTS_WHY + ["# " + line for line in allow_hosts(result)]
    return "\n".join(out) + "\n"


ALLOW_HOSTS_WHY = [
    "# Third-party hosts the pages load from that vendors.toml does not declare. Under",
    '# undeclared = "strip" (the default in opt-in mode) gate removes every script, frame, pixel, beacon',
    "# and connection hint to a host that allow_hosts does not name, so the page may lose them. Your own",
    "# CDN, fonts, video or map embeds: keep the host and write why the site needs it (gate check refuses",
    "# an empty reason). Anyone else receives visitors' data: declare it in vendors.toml and the notice",
    '# instead (`gate scan --crawl URL` drafts the stanza). undeclared = "report" only counts them.',
]


def allow_hosts(result: Crawl) -> list[str]:
    """The ``[site.allow_hosts]`` table for the undeclared hosts met, each reason left to fill in."""
    out = ["[site.allow_hosts]"]
    for host, pages in sorted(result.hosts.items()):
        out.append(f'{_q(host)} = ""  # reason: …  ({len(pages)} page(s), e.g. {_example(pages)})')
    return out


_SECOND_LEVEL = {"co", "ne", "or", "ac", "go", "gr", "ed", "lg", "ad", "com", "net", "org", "gov", "edu"}


def site_domain(host: str) -> str:
    """The name a vendor's hosts share: the last two labels, three under a country's second level
    (example.co.jp, example.com.sg). A heuristic for a draft, not the public suffix list."""
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def vendor_stanzas(result: Crawl, registry: Registry) -> list[str]:
    """vendors.toml stanzas for the undeclared hosts, one vendor per domain, every fact left to fill in
    from the vendor's own documentation (until then the file does not load: a recipient needs its name)."""
    by_domain: dict[str, list[str]] = {}
    for host in sorted(result.hosts):
        by_domain.setdefault(site_domain(host), []).append(host)
    purposes = ", ".join(_q(p) for p in registry.purposes)
    out: list[str] = []
    for domain, hosts in by_domain.items():
        vid = re.sub(r"[^a-z0-9]+", "_", domain.split(".")[0].lower()).strip("_")
        vid = vid if vid[:1].isalpha() and vid not in registry.vendors else "site_" + vid
        pages = Counter[str]()
        for h in hosts:
            pages.update(result.hosts[h])
        out += [
            f"# {domain}: {len(pages)} page(s), e.g. {_example(pages)}",
            f"[vendors.{vid}]",
            'recipient = ""  # the legal name of the company that receives the data',
            'contact_ja = ""',
            'privacy_url = ""  # the vendor\'s privacy policy',
            'optout_url = ""',
            f"domains = [{_q(domain)}]",
            'country = ""  # ISO 3166 code; abroad: also country_ja/_en, regime_ja/_en, measures_ja/_en (APPI art. 28)',
            "carried_by_default = false",
            "",
            f"[[vendors.{vid}.tags]]",
            f'id = "{vid}.tag"',
            'service_ja = ""',
            'service_en = ""',
            f"purposes = []  # of: {purposes}",
            f"hosts = [{', '.join(_q(h) for h in hosts)}]",
            "url_patterns = []",
            "signatures = []",
            "cookies = []",
            "information_ja = []  # what it sends, as the notice lists it",
            "information_en = []",
            'recipient_purpose_ja = ""',
            'recipient_purpose_en = ""',
            "",
        ]
    return out


def summary(result: Crawl, registry: Registry, hosts: bool = True) -> str:
    """What the crawl found, for the terminal (``hosts``: with the undeclared hosts' table)."""
    lines = [f"{result.start}: {len(result.pages)} page(s) read; stopped at {result.stopped_by}", ""]
    rows = [
        (t, registry.tags[t].vendor, str(len(result.tags[t])), _example(result.tags[t]))
        for t in registry.tags
        if t in result.tags
    ]
    lines.append(f"Tags found: {len(rows)}")
    if rows:
        lines += scan.table(("TAG", "VENDOR", "PAGES", "E.G."), rows)
    if hosts:
        host_rows = [(h, str(len(p)), _example(p)) for h, p in sorted(result.hosts.items())]
        lines += ["", f"Third-party hosts no vendor declares: {len(host_rows)}"]
        if host_rows:
            lines += scan.table(("HOST", "PAGES", "E.G."), host_rows)
        lines += ["", f"privacy policy: {result.policy or 'not found'}"]
    if result.skipped:
        lines += ["", f"skipped: {len(result.skipped)} (e.g. {result.skipped[0]})"]
    return "\n".join(lines)


def site_report(result: Crawl, registry: Registry) -> str:
    """`gate scan --crawl/--sitemap`: the tags, every third-party host met with its pages, and drafts of
    the allow_hosts table and of vendors.toml stanzas for the hosts no vendor declares."""
    lines = [summary(result, registry, hosts=False), "", f"Third-party hosts: {len(result.third_party)}"]
    rows = [
        (host, ",".join(sorted(result.host_vendors.get(host, ()))) or "-", str(len(pages)), _some(pages))
        for host, pages in sorted(result.third_party.items())
    ]
    if rows:
        lines += scan.table(("HOST", "VENDOR", "PAGES", "ON"), rows)
    if not result.hosts:
        lines += ["", "Every third-party host is a vendor's of vendors.toml: no allow_hosts needed."]
        return "\n".join(lines)
    lines += [
        "",
        f"Hosts no vendor declares: {len(result.hosts)} (VENDOR -). Draft for your [[site]] in gate.toml:",
        "",
        *ALLOW_HOSTS_WHY,
        *allow_hosts(result),
        "",
        "Draft for vendors.toml, for the hosts that receive visitors' data (fill every field from the",
        "vendor's own documentation, then `gate check --vendors FILE`):",
        "",
        *vendor_stanzas(result, registry),
    ]
    return "\n".join(lines).rstrip()


def site_json(result: Crawl, registry: Registry) -> dict[str, object]:
    return {
        "start": result.start,
        "pages": result.pages,
        "stopped_by": result.stopped_by,
        "tags": {t: sorted(result.tags[t]) for t in registry.tags if t in result.tags},
        "hosts": [
            {
                "host": host,
                "vendors": sorted(result.host_vendors.get(host, ())),
                "declared": host not in result.hosts,
                "pages": sorted(pages),
            }
            for host, pages in sorted(result.third_party.items())
        ],
        "skipped": result.skipped,
    }


def _some(pages: Counter[str], shown: int = 3) -> str:
    first = sorted(pages, key=lambda p: (-pages[p], p))
    return ", ".join(first[:shown]) + (f" +{len(first) - shown}" if len(first) > shown else "")


def _example(pages: Counter[str]) -> str:
    return sorted(pages, key=lambda p: (-pages[p], p))[0]


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def origin_of(url: str) -> str:
    """The upstream for gate.toml: scheme://host[:port] of the start URL; ConfigError unless http(s)."""
    parsed = urls.parse(url)
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError("command line", "URL", f"expected the site's http:// or https:// URL, got {url!r}")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
