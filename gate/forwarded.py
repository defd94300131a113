"""Who really asked, and how: X-Forwarded-For, -Proto and -Host, believed only from trusted proxies.

A front proxy (nginx, a load balancer, an ingress controller) knows the visitor's address, the scheme
the visitor used and the Host they asked for, and tells gate in X-Forwarded-* headers. Anyone else can
send the same headers, so gate believes them only when the peer that connected to it is one of
``trusted_proxies``; from anyone else they are dropped, never passed on.

From a trusted peer, X-Forwarded-For is walked right to left, skipping trusted hops: the first address
that is not a trusted proxy is the visitor (entries left of it are the visitor's own claims and are
dropped). X-Forwarded-Proto and -Host are taken as the nearest trusted proxy set them (the last value
when a proxy appended rather than replaced).

``ForwardedMiddleware`` rewrites the ASGI scope (in place) before routing, so that everything after it reads the
request as the visitor made it: ``scope["client"]`` is the visitor, ``scope["scheme"]`` the public
scheme, the ``host`` header the public Host, and no X-Forwarded-* header is left. The chain to send to
the origin (visitor, trusted hops, then the peer) is left in ``scope["gate.forwarded_for"]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SCOPE_KEY = "gate.forwarded_for"
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
_UNTRUSTED_DROP = _FORWARDED | {b"forwarded"}  # RFC 7239: we do not read it, so nobody may pass it on
_HOST = re.compile(r"^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """IP addresses or CIDR networks; raises ValueError naming the first bad one."""
    out = []
    for spec in specs:
        try:
            out.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(spec) from None
    return tuple(out)


def parse_address(value: str) -> Address | None:
    """An address as X-Forwarded-For or a socket names it: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The configured front proxies, compiled once."""

    def __init__(self, specs: Iterable[str]) -> None:
        self.networks = parse_networks(specs)

    def trusts(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        parsed = parse_address(address)
        return parsed is not None and any(parsed in n for n in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> tuple[str, list[str]]:
        """(the visitor's address, the chain to pass on) for a request from the trusted ``peer``."""
        chain = [peer]
        for entry in reversed(forwarded_for):
            address = parse_address(entry)
            if address is None:  # garbage: the hop that wrote it is as far as we can see
                break
            chain.insert(0, str(address))  # without a port: the origin gets plain addresses
            if not any(address in n for n in self.networks):
                break
        return chain[0], chain


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every comma-separated value of every ``name`` header, in order."""
    return [v.strip() for k, raw in headers if k == name for v in raw.decode("latin-1").split(",") if v.strip()]


def resolve(scope: Scope, proxies: TrustedProxies) -> None:
    """Rewrite an http/websocket ``scope`` in place as the visitor made the request (see the module's
    doc). In place, as uvicorn's own proxy-headers middleware does: whoever wraps the app sees the
    same scope, request state included."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    client = scope.get("client")
    if client is None or not proxies.trusts(client[0]):
        if any(k in _UNTRUSTED_DROP for k, _ in headers):
            scope["headers"] = [(k, v) for k, v in headers if k not in _UNTRUSTED_DROP]
        scope[SCOPE_KEY] = [client[0]] if client else []
        return
    peer, port = client
    visitor, chain = proxies.client(peer, _values(headers, b"x-forwarded-for"))
    scope["client"] = (visitor, port if visitor == peer else 0)
    scope[SCOPE_KEY] = chain
    protos = [p.lower() for p in _values(headers, b"x-forwarded-proto")]
    if protos and protos[-1] in ("http", "https"):
        scope["scheme"] = protos[-1] if scope.get("type") == "http" else {"http": "ws", "https": "wss"}[protos[-1]]
    hosts = _values(headers, b"x-forwarded-host")
    kept = [(k, v) for k, v in headers if k not in _FORWARDED]
    if hosts and _HOST.match(hosts[-1]):
        kept = [(k, v) for k, v in kept if k != b"host"] + [(b"host", hosts[-1].encode("latin-1"))]
    scope["headers"] = kept


class ForwardedMiddleware:
    """ASGI middleware: the scope as the visitor made the request (see the module's doc)."""

    def __init__(self, app: ASGIApp, proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.proxies = TrustedProxies(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            resolve(scope, self.proxies)
        await self.app(scope, receive, send)


def forwarded_for(scope: Scope) -> list[str]:
    """The X-Forwarded-For chain to send to the origin: the resolved one, else the peer alone."""
    if SCOPE_KEY in scope:
        return list(scope[SCOPE_KEY])
    client = scope.get("client")
    return [client[0]] if client else []
