"""One request through gate to an origin mocked with respx: the helper test_proxy.py and test_upstream.py
share (real-origin tests use conftest.serve instead)."""

from __future__ import annotations

import httpx
import respx

from gate import app as gate_app

from .conftest import asgi_client, gate_settings

ORIGIN = "http://origin.test"
PAGE = "<!doctype html><html><head><title>求人</title></head><body><h1>歯科衛生士</h1></body></html>"


def html(body: str | bytes = PAGE, **headers: str) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(200, headers={"content-type": "text/html; charset=utf-8", **headers}, content=content)


async def fetch(
    route_response: httpx.Response, path: str = "/", conf=None, **kwargs
) -> tuple[httpx.Response, respx.Route]:
    """One request through gate to a mocked origin; returns gate's answer and the origin's route."""
    app = gate_app.create_app(conf or gate_settings(ORIGIN))
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(host="origin.test").mock(return_value=route_response)
        async with asgi_client(app) as client:
            response = await client.request(kwargs.pop("method", "GET"), path, **kwargs)
    return response, route
