"""Is this response a page gate rewrites? HTML with a body; and, when the origin sent no
Content-Type, WHATWG MIME sniffing on the first decoded bytes (a browser would render an unlabelled
HTML body, so gate must read it too)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from .decoders import Decoder, decoder_for
from .errors import IncompleteBody

HTML_TYPES = ("text/html", "application/xhtml+xml")


def has_body(method: str, upstream: httpx.Response) -> bool:
    """A response a browser could render. 206 is a byte range of a file (a resumed download), never a
    page a browser renders, so it passes through like any other range."""
    return not (method == "HEAD" or upstream.status_code in (204, 206, 304) or upstream.status_code < 200)


def is_page(method: str, upstream: httpx.Response, content_type: str | None) -> bool:
    """A page we rewrite: HTML (by ``content_type``: the origin's, or what sniffing found) with a body
    (Content-Length 0 is none: there is nothing to gate)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    empty = upstream.headers.get("content-length", "").strip() == "0"
    return has_body(method, upstream) and media_type in HTML_TYPES and not empty


# WHATWG MIME sniffing, "rules for identifying an unknown MIME type": the HTML signatures.
_HTML_SIGNATURES = tuple(
    s.encode()
    for s in (
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    )
)
SNIFF_BYTES = 512
SNIFF_RAW_BYTES = 256 * 1024  # the most of an unlabelled body held back while sniffing


def looks_like_html(head: bytes) -> bool:
    """What a browser would render as HTML when no Content-Type says otherwise."""
    head = head.lstrip(b"\t\n\x0c\r ").upper()
    return any(head.startswith(sig) and head[len(sig) : len(sig) + 1] in (b" ", b">") for sig in _HTML_SIGNATURES)


async def sniff_unlabelled(
    body: AsyncIterator[bytes], content_encoding: str | None
) -> tuple[AsyncIterator[bytes], bool]:
    """Read up to SNIFF_BYTES of an unlabelled body (decoded) to tell whether it is HTML; the body is
    handed back whole, with what was read put back in front. Bounded both ways: at most SNIFF_RAW_BYTES
    of the body are held, and no more than SNIFF_BYTES are ever decoded (a bomb stays a few KB)."""
    decoder = decoder_for(content_encoding)
    if decoder is None:
        return body, False  # the browser cannot decode it either: it will not render it
    held: list[bytes] = []
    head, held_bytes, readable = b"", 0, True
    async for chunk in body:
        held.append(chunk)
        held_bytes += len(chunk)
        head, readable = _decoded_head(decoder, chunk, head)
        if not readable or len(head) >= SNIFF_BYTES or held_bytes >= SNIFF_RAW_BYTES:
            break

    async def chained() -> AsyncIterator[bytes]:
        for chunk in held:
            yield chunk
        async for chunk in body:
            yield chunk

    return chained(), looks_like_html(head)


def _decoded_head(decoder: Decoder, chunk: bytes, head: bytes) -> tuple[bytes, bool]:
    """``head`` plus what ``chunk`` decodes to, up to SNIFF_BYTES in all; False once the body cannot be
    decoded (what came out before is still judged, as a browser would have rendered it)."""
    try:
        for piece in decoder.pieces(chunk):
            head += piece[: SNIFF_BYTES - len(head)]
            if len(head) >= SNIFF_BYTES:
                break
    except IncompleteBody:
        return head, False
    return head, True
