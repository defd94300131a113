"""The rewriter with warm and with cold CPU caches: why a page costs more inside `gate serve` than in
bench/rewrite.py's loop.

In bench/rewrite.py the same page is rewritten again and again, so the rewriter's code and the data it
reads (remembered decisions, the registry) stay in the CPU's caches. In a server, each page is rewritten
between an HTTP parse, a socket read, httpx's bookkeeping and a log line, which push them out. Here each
run is preceded by one of:

  clean   nothing
  memory  a write to every cache line of an 8 MiB buffer (evicts the caches wholesale)
  python  a JSON round trip of 3,000 small objects (the kind of work a request does around the page)

Same page (``gate.demo.bench_page("100k")``, in the two chunks nginx sends it in), same plan (everything
refused, a banner-sized injection), warm decisions; the three cases interleaved, medians of ``--runs``.

    python bench/coldcache.py [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate import urls, vendors
from gate.demo import bench_page
from gate.rewrite import PagePlan, PageRewriter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    registry = vendors.load()
    page = bench_page("100k")
    plan = PagePlan(
        registry=registry,
        allowed=frozenset(),
        base_url=urls.parse("http://127.0.0.1:9116/page.html") or urls.URL("http", "127.0.0.1:9116", "/page.html"),
        head_html="<script data-gate>var x = 1;</script>" * 5,
        body_html="<div data-gate>" + "x" * 4000 + "</div>",
    )
    junk = bytearray(8 * 1024 * 1024)
    objects = [{f"k{i}": [i, str(i), {"x": i}]} for i in range(3000)]

    def evict(kind: str) -> None:
        if kind == "memory":
            for i in range(0, len(junk), 64):
                junk[i] = (junk[i] + 1) & 255
        elif kind == "python":
            json.loads(json.dumps(objects))

    def rewrite() -> float:
        rw = PageRewriter(plan, "utf-8")
        started = time.perf_counter()
        rw.feed(page[:65293])
        rw.feed(page[65293:])
        rw.close()
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"clean": [], "memory": [], "python": []}
    for _ in range(20):
        rewrite()
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    for _ in range(args.runs):
        for kind, seen in times.items():
            evict(kind)
            seen.append(rewrite())
    clean = statistics.median(times["clean"])
    for kind, seen in times.items():
        median = statistics.median(seen)
        print(f"{kind:7s} {median * 1e3:6.3f} ms  ({median / clean:.2f}x clean)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
