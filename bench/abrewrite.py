"""The rewriter of two or more checkouts against each other, in one run: is this change faster?

Each checkout (``--trees name=DIR``) gets a child process of its own, pinned to the same core; the runs
alternate between them (batches of ``--batch`` warm runs, one cold run at a time, the order flipped
every round), and each row's median is printed with its ratio to the first tree. Before any timing the
trees must give the same output for each page and row. A run is ``PageRewriter(PagePlan(registry,
allowed, base), codec).feed(page) + close()`` on bench/rewrite.py's pages; ``cold`` forgets the
remembered decisions before every run (``registry.clear_caches()`` in checkouts older than
gate/decisions.py). ``--clock cpu`` times the thread's CPU instead of the wall clock.

    python bench/abrewrite.py --trees before=/path/to/old/checkout after=. --runs 200
    python bench/abrewrite.py --trees before=... after=. --pages "100k utf-8" --rows cold --clock cpu

An older checkout needs its C scan built in place (its gate/_fastscan*.so), or it runs pure Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import gc, json, os, sys, time
root = sys.argv[1]
sys.path.insert(0, root)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]  # pip install -e's import hook
os.sched_setaffinity(0, {int(sys.argv[2])})
CLOCK = time.thread_time if sys.argv[3] == "cpu" else time.perf_counter
from gate import urls, vendors
from gate.rewrite import PagePlan, PageRewriter
if os.path.exists(os.path.join(root, "gate", "decisions.py")):
    from gate import decisions
    def forget(reg): decisions.forget(reg)
else:
    def forget(reg): reg.clear_caches()
import gate
assert gate.__file__.startswith(root), gate.__file__
BASE = urls.parse("https://demo.example/jobs")
REG = vendors.load()
COLD = vendors.load()
ALL = frozenset(REG.tags)
pages = {}
for line in sys.stdin:
    cmd = json.loads(line)
    path, codec, row, n = cmd["page"], cmd["codec"], cmd["row"], cmd["n"]
    page = pages.get(path)
    if page is None:
        page = pages[path] = open(path, "rb").read()
    rows = ["refused", "cold", "accepted"] if row == "rotate" else [row]
    times = []
    out = b""
    for i in range(n * len(rows)):
        r = rows[i % len(rows)]
        reg = COLD if r == "cold" else REG
        plan = PagePlan(reg, ALL if r == "accepted" else frozenset(), BASE)
        if r == "cold":
            forget(reg)
        gc.collect()
        if os.environ.get("NOGC"): gc.disable()
        t0 = CLOCK()
        rw = PageRewriter(plan, codec)
        out = rw.feed(page) + rw.close()
        times.append(CLOCK() - t0)
        gc.enable()
    import hashlib
    if row == "rotate":  # one list per row: refused, cold, accepted, each run right after the others
        times = [times[k::3] for k in range(3)]
    print(json.dumps({"times": times, "out": hashlib.sha1(out).hexdigest()}), flush=True)
"""

HERE = Path(__file__).resolve().parent
WORK = Path(tempfile.mkdtemp(prefix="gate-abrewrite-"))
CODECS = {"utf-8": "utf-8", "sjis": "cp932"}
PAGES = {
    f"{size} {charset}": (str(WORK / f"{size}-{charset}.html"), CODECS[charset])
    for size in ("20k", "100k", "list")
    for charset in ("utf-8", "sjis")
}


def make_pages() -> None:
    """bench/rewrite.py's pages of this checkout, written once for the children to read."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    import rewrite as bench

    for key, (path, _) in PAGES.items():
        size, charset = key.split()
        Path(path).write_bytes(bench.bench_page(size, charset))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--pages", nargs="+", default=list(PAGES))
    ap.add_argument("--rows", nargs="+", default=["refused", "cold", "accepted"])
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: the thread's CPU time")
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    args = ap.parse_args()
    make_pages()
    trees = [t.split("=", 1) for t in args.trees]
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, root, str(args.cpu), args.clock],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(WORK),
        )
        for name, root in trees
    }

    def ask(name: str, page: str, row: str, n: int) -> dict:
        path, codec = PAGES[page]
        p = procs[name]
        p.stdin.write(json.dumps({"page": path, "codec": codec, "row": row, "n": n}) + "\n")
        p.stdin.flush()
        return json.loads(p.stdout.readline())

    results: dict = {}
    started = time.time()
    for page in args.pages:
        for row in args.rows:
            times = {name: [] for name, _ in trees}
            outs = {}
            for name, _ in trees:  # warm-up
                outs[name] = ask(name, page, row, 3)["out"]
            if len(set(outs.values())) != 1:
                print(f"!! outputs differ on {page} {row}: {outs}")
            done = 0
            flip = False
            while done < args.runs:
                n = min(1 if row in ("cold", "rotate") else args.batch, args.runs - done)
                order = trees if not flip else trees[::-1]
                for name, _ in order:
                    got = ask(name, page, row, n)["times"]
                    if row == "rotate":
                        times[name].append(got)
                    else:
                        times[name] += got
                done += n
                flip = not flip
            if row == "rotate":
                for k, sub in enumerate(["refused", "cold", "accepted"]):
                    med = {
                        name: statistics.median([x for batch in t for x in batch[k]] if isinstance(t[0], list) else t)
                        * 1e3
                        for name, t in times.items()
                    }
                    first = trees[0][0]
                    print(
                        f"{page:<11} rot-{sub:<5} "
                        + "  ".join(
                            f"{name} {m:.3f}" + ("" if name == first else f" ({m / med[first]:.3f}x)")
                            for name, m in med.items()
                        ),
                        flush=True,
                    )
                continue
            med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
            results[f"{page} {row}"] = med
            first = trees[0][0]
            cells = "  ".join(
                f"{name} {m:.3f}" + ("" if name == first else f" ({m / med[first]:.3f}x)") for name, m in med.items()
            )
            print(f"{page:<11} {row:<9} {cells}", flush=True)
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(
        f"# {args.runs} runs each, batches of {args.batch} (cold: 1), alternating order, clock {args.clock},"
        f" cpu {args.cpu}, {time.time() - started:.0f} s, load {os.getloadavg()[0]:.2f}"
    )
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
