"""How much memory the rewriter's decision caches can hold (gate/rewrite.py, gate/vendors.py).

Each worker remembers, per registry, the decisions it made on tags, whole script/style/noscript
elements, attribute parses, inline scripts and the URLs it looked up. Every cache is bounded by entries and
by the size of what it keeps; a full cache forgets what it used least recently. This script feeds
pages built to fill every cache with entries close to the largest it keeps (40 tags of about 2 KB, one
inline script of about 16 KB, one 1.5 KB external script URL and one <style> of about 32 KB a page, every
page different) and
prints the largest traced memory the caches reached over the start, with how many entries each held.

    python bench/cache_memory.py
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate import decisions, urls, vendors
from gate.rewrite import PagePlan, PageRewriter

PAGES = 400


def page(i: int) -> bytes:
    pad = "x" * 1900
    tags = "".join(f'<img src="/p/{i}-{k}.jpg" alt="{pad}">' for k in range(40))
    script = "<script>var s='" + "y" * 16000 + f"{i}';</script>"
    link = f'<script src="https://cdn.example.org/{i}/' + "z" * 1500 + '.js"></script>'
    style = f"<style>/* {i} */" + "a{b:c}" * 5400 + "</style>"  # ~32 KB: the largest long element kept
    return f"<!doctype html><head>{style}</head><body>{tags}{script}{link}</body>".encode()


def held_entries(registry: vendors.Registry) -> dict[str, int]:
    remembered = decisions.of(registry)
    return {
        "verdicts": len(remembered.verdicts),
        "long": len(remembered.long) if remembered.long is not None else 0,
        "attrs": len(remembered.attrs),
        "scripts": len(registry.matcher._script_cache),
        "urls": len(registry.matcher._url_cache),
    }


def main() -> None:
    registry = vendors.load()
    plan = PagePlan(registry, frozenset(), urls.parse("https://jobs.example.jp/"))
    tracemalloc.start()
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    peak, entries = 0, {}
    for i in range(PAGES):
        rw = PageRewriter(plan)
        rw.feed(page(i))
        rw.close()
        del rw
        held = tracemalloc.get_traced_memory()[0] - start
        if held > peak:
            peak, entries = held, held_entries(registry)
    decisions.forget(registry)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - start
    print(f"{PAGES} pages: the caches reached {peak / 2**20:.1f} MiB traced over the start, holding {entries}")
    print(f"after decisions.forget: {after / 2**20:.1f} MiB over the start")


if __name__ == "__main__":
    main()
