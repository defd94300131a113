"""urls.parse against a real WHATWG URL parser: node's `URL`, an implementation of the URL Standard
that browsers follow. Generated URL strings full of the tricks a page could
use (slashes and backslashes, schemes, userinfo, ports, percent-encoding, full-width and ideographic
characters, control characters), against first-party and vendor base URLs. The property is the one
gating needs: every vendor tag the browser's host belongs to, gate's host belongs to as well."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import pytest

from gate import urls, vendors
from gate.urls import URL

PIECES = [
    "https:",
    "http:",
    "HTTPS:",
    "wss:",
    "ws:",
    "ftp:",
    "file:",
    "javascript:",
    "data:",
    "//",
    "/",
    "\\",
    "\\\\",
    "\t",
    "\n",
    " ",
    "\x00",
    "\x1f",
    "connect.facebook.net",
    "CONNECT.FACEBOOK.NET",
    "www.facebook.com",
    "jobs.example.jp",
    "tr",
    "?id=1",
    "#f",
    "..",
    ".",
    "%2e",
    "%2E",
    "x@",
    "a:b@",
    "@",
    ":443",
    ":",
    "[::1]",
    "%63onnect.facebook.net",
    "ｆａｃｅｂｏｏｋ.com",
    "facebook。com",
    "facebook.com.",
    "xn--n3h",
    "☃",
    "%00",
    ";",
    "&",
    "=",
    "googletagmanager.com",
    "notfacebook.net",
    "facebook.net.example.org",
]
BASES = [
    "https://jobs.example.jp/jobs/42?ref=top",
    "https://www.facebook.com/x/",
    "http://jobs.example.jp/",
    "https://jobs.example.jp/",
]
SEEDS = [1, 2, 3]
PER_SEED = 4000
NODE_SCRIPT = r"""
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(cases.map(([raw, base]) => {
  try { const u = new URL(raw, base); return [u.protocol.slice(0, -1), u.hostname]; } catch (e) { return null; }
})));
"""


def generated(seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))), rng.choice(BASES)) for _ in range(PER_SEED)]


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed (Debian: apt-get install nodejs); .ci/run installs it")
    return path


@pytest.mark.parametrize("seed", SEEDS)
def test_gate_finds_every_vendor_host_the_whatwg_parser_finds(node, seed):
    registry = vendors.load()
    cases = generated(seed)
    answers = json.loads(
        subprocess.run(
            [node, "-e", NODE_SCRIPT], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    assert len(answers) == len(cases)
    compared, missed = 0, []
    for (raw, base), answer in zip(cases, answers, strict=True):
        if answer is None or answer[0] not in ("http", "https", "ws", "wss"):
            continue  # the browser fetches nothing from a vendor there
        scheme, host = answer
        ours = urls.parse(raw, urls.parse(base))
        theirs_tags = registry.tags_for_url(URL(scheme, host.rstrip("."), "/"))
        ours_tags = registry.tags_for_url(URL(ours.scheme, ours.host, "/")) if ours else frozenset()
        compared += 1
        if theirs_tags - ours_tags:
            missed.append((raw, base, host, ours))
    assert compared > PER_SEED // 2  # the generator mostly makes fetchable URLs
    assert not missed, missed[:10]


def test_the_oracle_sees_what_a_browser_sees(node):
    """The oracle itself, on rows whose reading the URL Standard spells out (one slash after the
    base's own scheme is a path; every further slash of a scheme-relative URL is skipped; userinfo)."""
    cases = [
        ("https:/tr?id=1", "https://www.facebook.com/x/"),
        ("////connect.facebook.net/x.js", "https://jobs.example.jp/"),
        ("https://x@connect.facebook.net/", "https://jobs.example.jp/"),
    ]
    answers = json.loads(
        subprocess.run(
            [node, "-e", NODE_SCRIPT], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    assert answers == [
        ["https", "www.facebook.com"],
        ["https", "connect.facebook.net"],
        ["https", "connect.facebook.net"],
    ]
