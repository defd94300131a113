"""The parts of WHATWG URL parsing that decide which host a browser would contact.

Only what matters for gating is computed: the scheme, the host (as the browser would resolve it)
and the path with query. Anything odd is read the way a browser reads it, never the easy way:
leading/trailing C0 and spaces stripped, tabs and newlines removed anywhere, backslashes as slashes
for special schemes, any number of slashes after a special scheme, userinfo, ports, percent-encoded
and full-width (IDNA-mapped) hosts, trailing dots. Relative URLs resolve against the base.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple
from urllib.parse import unquote

SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_C0_SPACE = "".join(chr(i) for i in range(0x21))
_TAB_NL = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_IDEOGRAPHIC_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class URL(NamedTuple):
    scheme: str
    host: str  # lower-case ASCII where possible, no trailing dot; "" when none
    path: str  # path + query as written (fragment dropped)

    @property
    def key(self) -> str:
        """The `//host/path?query` form that vendors.toml url_patterns match."""
        return "//" + self.host + self.path


def clean(raw: str) -> str:
    return _TAB_NL.sub("", raw.strip(_C0_SPACE))


def normalise_host(host: str) -> str:
    if "%" in host:
        host = unquote(host, errors="surrogateescape")
    if not host.isascii():
        host = unicodedata.normalize("NFKC", host.translate(_IDEOGRAPHIC_DOTS))
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # keep the mapped Unicode form: it still matches nothing it should not
    host = host.lower()
    while host.endswith("."):
        host = host[:-1]
    return host


def _split_authority(rest: str, special: bool) -> tuple[str, str]:
    """rest starts right after the slashes; returns (host, path)."""
    stop = re.search(r"[/?#\\]" if special else r"[/?#]", rest)
    authority, path = (rest[: stop.start()], rest[stop.start() :]) if stop else (rest, "")
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("["):
        host = authority[: authority.find("]") + 1] if "]" in authority else authority
    else:
        host = authority.split(":", 1)[0]
    if special:
        path = path.replace("\\", "/")
    if "#" in path:
        path = path[: path.index("#")]
    if special:
        path = normalise_path(path)
    return normalise_host(host), path


def parse(raw: str, base: URL | None = None) -> URL | None:
    """Parse ``raw`` as a browser would (against ``base``); None when it names no fetchable place."""
    s = clean(raw)
    m = _SCHEME.match(s)
    if m:
        scheme = m.group(1).lower()
        rest = s[m.end() :]
        if scheme in SPECIAL:
            if base is not None and scheme == base.scheme and not _two_slashes(rest):
                # "https:foo" and "https:/foo" with an https base are relative to it (the special
                # relative or authority state, then the relative slash state)
                return _relative(rest.replace("\\", "/"), base)
            host, path = _split_authority(rest.lstrip("/\\"), True)
            return URL(scheme, host, path)
        if rest.startswith("//"):
            host, path = _split_authority(rest[2:], False)
            return URL(scheme, host, path)
        return URL(scheme, "", rest)
    if base is None:
        return None
    special = base.scheme in SPECIAL
    if special:
        s = s.replace("\\", "/")
    if s.startswith("//"):
        # a special base: the special authority ignore slashes state skips every further slash
        host, path = _split_authority(s.lstrip("/") if special else s[2:], special)
        return URL(base.scheme, host, path if special else path or "/")
    return _relative(s, base)


# How much of the base URL parse() reads for a given input (what a cache of its results must key on).
READS_NOTHING, READS_SCHEME, READS_ORIGIN, READS_ALL = range(4)


def base_read(raw: str, base: URL) -> int:
    """How much of ``base`` ``parse(raw, base)`` reads: nothing (an absolute URL), its scheme (a
    scheme-relative one), its scheme and host (an absolute path), or all of it. Follows parse()."""
    s = clean(raw)
    m = _SCHEME.match(s)
    if m:
        scheme = m.group(1).lower()
        if scheme not in SPECIAL:
            return READS_NOTHING
        rest = s[m.end() :]
        if scheme == base.scheme and not _two_slashes(rest):
            return _relative_read(rest.replace("\\", "/"))
        return READS_SCHEME  # parse compared it with the base's scheme
    if base.scheme in SPECIAL:
        s = s.replace("\\", "/")
    if s.startswith("//"):
        return READS_SCHEME
    return _relative_read(s)


def _two_slashes(rest: str) -> bool:
    """Does what follows a special scheme open with two slashes (either way round)? Only then is it
    an authority when the base has the same scheme."""
    return len(rest) >= 2 and rest[0] in "/\\" and rest[1] in "/\\"


def _relative_read(s: str) -> int:
    if "#" in s:
        s = s[: s.index("#")]
    return READS_ORIGIN if s.startswith("/") else READS_ALL


def _relative(s: str, base: URL) -> URL:
    if "#" in s:
        s = s[: s.index("#")]
    if s.startswith("/"):
        return URL(base.scheme, base.host, normalise_path(s))
    if s.startswith("?") or not s:
        return URL(base.scheme, base.host, base.path.split("?", 1)[0] + s)
    directory = base.path.split("?", 1)[0].rsplit("/", 1)[0]
    return URL(base.scheme, base.host, normalise_path(directory + "/" + s))


_SINGLE_DOT = {".", "%2e"}
_DOUBLE_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}


def normalise_path(path: str) -> str:
    """Resolve "." and ".." segments (also percent-encoded) as a browser does for special schemes;
    an empty path is "/"."""
    p, sep, query = path.partition("?")
    if not p.startswith("/"):
        p = "/" + p
    if "." in p or "%" in p:
        out: list[str] = []
        segments = p.split("/")[1:]
        for i, seg in enumerate(segments):
            low, last = seg.lower(), i == len(segments) - 1
            if low in _DOUBLE_DOT:
                if out:
                    out.pop()
                if last:
                    out.append("")
            elif low in _SINGLE_DOT:
                if last:
                    out.append("")
            else:
                out.append(seg)
        p = "/" + "/".join(out)
    return p + sep + query


_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f]")


def safe_next(value: str, origin: str) -> str:
    """``next`` when it is a path on this site; "/" for anything a browser could read as elsewhere."""
    if not value.startswith("/") or value[1:2] in ("/", "\\") or len(value) > 2048 or _UNSAFE_NEXT.search(value):
        return "/"
    base = parse(origin + "/")
    target = parse(value, base)
    if base is None or target is None or (target.scheme, target.host) != (base.scheme, base.host):
        return "/"
    return value
