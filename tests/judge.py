"""The judge of what a browser would load: html5lib parses gate's output as a browser does
(WHATWG tree construction, scripting off, so <noscript> content is live markup) and we list every
vendor tag a live element would contact or run."""

from __future__ import annotations

import base64
from urllib.parse import unquote_to_bytes

import html5lib

from gate import htmlstream, urls
from gate.vendors import Registry

HTML = "{http://www.w3.org/1999/xhtml}"
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}href"
DATA_TYPES = {"application/json", "application/ld+json"}


FRAMES = {"iframe", "frame", "object", "embed"}  # they show a data: URL as a document of its own


def data_url_document(value: str) -> str:
    """The text of a data: URL (RFC 2397): percent-decoded, base64-decoded when marked so."""
    meta, _, payload = value.strip().partition(",")
    raw = unquote_to_bytes(payload)
    if meta.lower().replace(" ", "").endswith(";base64"):
        raw = b"".join(raw.split())
        raw = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=False)
    return raw.decode("utf-8", "replace")


def live_tags(
    page: bytes | str, registry: Registry, base: str = "https://jobs.example.jp/", encoding: str | None = None
) -> set[str]:
    """Tag ids that a browser loading ``page`` would contact or run."""
    kw = {"transport_encoding": encoding} if encoding and isinstance(page, bytes) else {}
    doc = html5lib.parse(page, treebuilder="etree", **kw)
    page_url = urls.parse(base)
    assert page_url is not None
    base_url = page_url
    found: set[str] = set()
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag == HTML + "base" and el.get("href") is not None:
            base_url = urls.parse(el.get("href"), page_url) or base_url
            break

    def url(value: str | None) -> set[str]:
        if value is None:
            return set()
        u = urls.parse(value, base_url)
        if u is None:
            return set()
        if u.scheme in ("javascript", "data"):
            return set(registry.tags_in_text(value))
        return set(registry.tags_for_url(u))

    def css(text: str) -> set[str]:
        return {t for u in htmlstream.css_urls(text) for t in url(u)}

    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        ns, _, name = el.tag[1:].partition("}")
        name = name.lower()
        text = "".join(el.itertext()) if name in ("script", "style") else ""
        if name == "script":
            if (el.get("type") or "").strip().lower() not in DATA_TYPES:
                found |= registry.tags_in_text(text)
            found |= url(el.get("src")) | url(el.get("href") if ns.endswith("svg") else None) | url(el.get(XLINK))
        if name == "style":
            found |= css(text)
        for key, value in el.attrib.items():
            k = key.lower() if isinstance(key, str) else ""
            if k.startswith("on"):
                found |= registry.tags_in_text(value)
            elif k == "style":
                found |= css(value)
            elif k in ("src", "data", "poster", "background", XLINK.lower()):
                found |= url(value)
                if name in FRAMES and value.lstrip().lower().startswith("data:"):
                    found |= live_tags(data_url_document(value), registry, base)
            elif k == "href" and (
                name in ("link", "image", "use", "feimage", "script") or ns.endswith("svg") and name != "a"
            ):
                found |= url(value)
            elif k == "href" or k in ("action", "formaction"):
                u = urls.parse(value, base_url)
                if u is not None and u.scheme == "javascript":
                    found |= registry.tags_in_text(value)
            elif k == "srcset":
                for cand in value.split(","):
                    parts = cand.split()
                    found |= url(parts[0] if parts else None)
            elif k == "ping":
                for u in value.split():
                    found |= url(u)
            elif k == "srcdoc":
                found |= live_tags(value, registry, base)
            elif k == "content" and name == "meta" and (el.get("http-equiv") or "").lower() == "refresh":
                if "=" in value:
                    found |= url(value.split("=", 1)[1].strip().strip("'\""))
    return found
