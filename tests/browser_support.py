"""Real-browser helpers: Debian's Chromium driven by Playwright, every request to a vendor observed.

- ``launch(playwright)``: headless Chromium from ``GATE_CHROMIUM`` (default /usr/bin/chromium); never a
  downloaded browser.
- ``Traffic``: a context's request log. First-party requests (the gate under test) go through; any other
  host gets an empty 200 at once, so nothing hangs on the network and every attempt is recorded.
- ``LOADERS``: what each vendor tag's loading looks like on the wire, by the demo site's fake ids.
- ``AXE_JS``: axe-core's browser build (``GATE_AXE_JS``, or npm's usual places), or None.

``python tests/browser_support.py --screenshots [DIR]`` serves the demo behind gate and writes the
README's screenshots (default DIR: docs/).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("GATE_CHROMIUM") or "/usr/bin/chromium"
# Quiet, reproducible Chromium: no sandbox (CI runs as root), no GPU, and none of its own calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The URL (a substring) by which each tag's load shows on the wire: the demo site's fake ids.
LOADERS = {
    "ga4": "www.googletagmanager.com/gtag/js?id=G-DEMO12345",
    "google_ads": "www.googletagmanager.com/gtag/js?id=AW-100000001",
    "gtm": "www.googletagmanager.com/gtm.js?id=GTM-DEMO123",
    "yahoo": "s.yimg.jp/images/listing/tool/cv/ytag.js",
    "criteo": "dynamic.criteo.com/js/ld/ld.js",
    "adjust": "cdn.adjust.com/adjust-latest.min.js",
    "meta": "connect.facebook.net/en_US/fbevents.js",
    # <noscript> contents: they load only when JavaScript is off.
    "gtm_noscript": "www.googletagmanager.com/ns.html?id=GTM-DEMO123",
    "meta_noscript": "www.facebook.com/tr?id=100000000000001",
}
SCRIPT_LOADERS = frozenset(LOADERS) - {"gtm_noscript", "meta_noscript"}

CONTENT_TYPES = {
    ".js": "application/javascript",
    ".html": "text/html",
    ".gif": "image/gif",
    ".png": "image/png",
    ".json": "application/json",
    ".css": "text/css",
}


def _find_axe() -> Path | None:
    candidates = [os.environ.get("GATE_AXE_JS", "")]
    for prefix in (ROOT, Path("/usr/local/lib"), Path("/usr/lib")):
        candidates.append(str(prefix / "node_modules/axe-core/axe.min.js"))
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


AXE_JS = _find_axe()


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set GATE_CHROMIUM)"
    return None


def launch(playwright: Playwright) -> Browser:
    """Headless Debian Chromium; Playwright's own browser downloads are never used."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _content_type(url: str) -> str:
    path = urlsplit(url).path
    return next((ctype for ext, ctype in CONTENT_TYPES.items() if path.endswith(ext)), "text/plain")


class Traffic:
    """Every URL a browser context requested. Only ``base``'s host reaches the network.

    A vendor URL gets an empty body, or ``bodies[name]`` when it is the LOADERS entry ``name`` (a tag
    manager container that injects other tags, say)."""

    def __init__(self, base: str, bodies: dict[str, str] | None = None) -> None:
        self.first_party = urlsplit(base).netloc
        self.bodies = bodies or {}
        self.urls: list[str] = []

    def handle(self, route: Route) -> None:
        url = route.request.url
        self.urls.append(url)
        if urlsplit(url).netloc == self.first_party:
            route.continue_()
            return
        body = next((b for name, b in self.bodies.items() if LOADERS[name] in url), "")
        route.fulfill(status=200, body=body, content_type=_content_type(url))

    def clear(self) -> None:
        self.urls.clear()

    @property
    def vendor_urls(self) -> list[str]:
        """Requests that left the site (any host but the gate's), in order."""
        return [u for u in self.urls if urlsplit(u).netloc != self.first_party and not u.startswith("data:")]

    @property
    def loaded(self) -> set[str]:
        """The LOADERS names that were requested."""
        return {name for name, needle in LOADERS.items() if any(needle in u for u in self.vendor_urls)}

    @property
    def unexplained(self) -> list[str]:
        """Vendor requests that match no LOADERS entry: a tag this table does not know about."""
        return [u for u in self.vendor_urls if not any(needle in u for needle in LOADERS.values())]


def new_context(
    browser: Browser, base: str, bodies: dict[str, str] | None = None, **options: Any
) -> tuple[BrowserContext, Traffic]:
    """A fresh context (no cookies) in Japanese, with its traffic routed through a Traffic log."""
    context = browser.new_context(**({"locale": "ja-JP", "viewport": {"width": 1280, "height": 800}} | options))
    traffic = Traffic(base, bodies)
    context.route("**/*", traffic.handle)
    return context, traffic


def page_errors(page: Page) -> list[str]:
    """A list that fills with the page's uncaught JavaScript errors."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the document is wider than the viewport (0: no horizontal scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def run_axe(page: Page, include: str | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` (within ``include``, a selector, when given)."""
    assert AXE_JS is not None
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))
    context = {"include": [include]} if include else None
    result = page.evaluate("ctx => axe.run(ctx || document, {resultTypes: ['violations']})", context)
    return list(result["violations"])


@contextmanager
def demo_gate(config: Path | None = None, app_state: dict[str, Any] | None = None) -> Iterator[str]:
    """gate in front of its embedded demo site (``config``: a gate.toml), on real uvicorn at 127.0.0.1;
    yields the base URL. ``app_state``, when given, receives the app's Gate (gate.context) as "state"."""
    from gate import settings
    from gate.app import create_app
    from tests.conftest import serve

    # No report store: browser tests that need one make their own (a test run writes nothing here).
    app = create_app(settings.load({"config": str(config)} if config else {}, {"GATE_STORE": "off"}))
    if app_state is not None:
        app_state["state"] = app.state.gate
    with serve(app) as base:
        yield base


# -- screenshots ---------------------------------------------------------------------------------
SHOTS = [  # (file, path, viewport, device scale)
    ("banner-ja-desktop.png", "/", (1280, 800), 1),
    ("banner-ja-phone.png", "/", (360, 740), 2),
    ("banner-en-desktop.png", "/?gate_lang=en", (1280, 800), 1),
    ("banner-en-phone.png", "/?gate_lang=en", (360, 740), 2),
    ("notice-ja.png", "/_gate/notice", (1280, 800), 1),
]


def take_screenshots(outdir: Path) -> list[Path]:
    """Write SHOTS into ``outdir`` (the notice as a full page, the banner as the visitor first sees it)."""
    from playwright.sync_api import sync_playwright

    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with demo_gate() as base, sync_playwright() as p:
        browser = launch(p)
        try:
            for name, path, (width, height), scale in SHOTS:
                phone = width < 500
                context, _ = new_context(
                    browser,
                    base,
                    viewport={"width": width, "height": height},
                    device_scale_factor=scale,
                    is_mobile=phone,
                    has_touch=phone,
                )
                page = context.new_page()
                page.goto(base + path, wait_until="load")
                target = outdir / name
                page.screenshot(path=str(target), full_page=name.startswith("notice"))
                written.append(target)
                context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--screenshots":
        print("usage: python tests/browser_support.py --screenshots [DIR]", file=sys.stderr)
        return 2
    if reason := chromium_missing():
        print(f"browser_support: {reason}", file=sys.stderr)
        return 1
    for path in take_screenshots(Path(argv[1]) if len(argv) > 1 else ROOT / "docs"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
