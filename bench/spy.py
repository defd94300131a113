"""Where `gate serve`'s time goes on a page, by py-spy, while wrk loads it (issue 12).

Starts bench/proxy.py's nginx origin and `gate serve` in front of it (as bench/proxy.py does: access
log, ledger and receipts on, no cookie), runs ``wrk`` on the 100 KB page for ``--duration`` seconds at
``--connections``, and samples gate's worker with ``py-spy record --format raw`` meanwhile. Prints the
functions with the largest share of gate's samples, inclusive (the function and what it called) and
self, and the samples per request. Both servers are stopped by their PIDs at the end.

    pip install py-spy
    python bench/spy.py                          # 10 s at 1 connection
    python bench/spy.py --connections 32 --top 40 --raw /tmp/gate.raw

Sampling costs the worker some speed (py-spy reads its memory from outside): read the shares, not the
request rate wrk prints.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import proxy  # noqa: E402  (bench/proxy.py: the origin, the gate row, wrk)


def frames(line: str) -> tuple[list[str], int]:
    """One py-spy raw line: the stack, outermost first, as "function (file)" names, and its count."""
    stack, _, count = line.rpartition(" ")
    names = []
    for frame in stack.split(";"):
        m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
        names.append(f"{m.group(1)} ({_short(m.group(2))})" if m else frame)
    return names, int(count)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/gate/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1] if marker != "/gate/" else "gate/" + path.split(marker, 1)[1]
    return os.path.basename(path)


def summarize(raw: str, top: int, requests: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        names, count = frames(line)
        total += count
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        raise SystemExit("py-spy recorded no sample")
    print(f"{total:,} samples, {requests:,} requests: {total / max(requests, 1):.2f} samples per request")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}: share of gate's samples")
        for name, count in counter.most_common(top):
            print(f"  {100 * count / total:5.1f} %  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--path", default=proxy.PAGE, help="what wrk asks for (the 100 KB page)")
    parser.add_argument("--raw", help="also keep py-spy's raw output here")
    args = parser.parse_args()
    pyspy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if not pyspy or not shutil.which("wrk"):
        raise SystemExit("needs py-spy (pip install py-spy) and wrk (apt-get install wrk)")
    procs: dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            proxy.write_site(tmp)
            proxy.start_all(tmp, ["gate"], procs)
            url = f"http://127.0.0.1:{proxy.PORTS['gate']}{args.path}"
            proxy.wrk(url, args.connections, 1)  # warm-up
            out = tmp / "gate.raw"
            spy = subprocess.Popen(
                [pyspy, "record", "--pid", str(procs["gate"].pid), "--rate", str(args.rate), "--format", "raw"]
                + ["--output", str(out), "--duration", str(round(args.duration)), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result = proxy.wrk(url, args.connections, args.duration)
            spy.wait(timeout=args.duration + 60)
            requests = round(result["rps"] * args.duration)
            print(f"wrk -c{args.connections}: {result['rps']:,.0f} req/s, p50 {result['p50']:.3f} ms (sampled)")
            raw = out.read_text()
            if args.raw:
                Path(args.raw).write_text(raw)
            summarize(raw, args.top, requests)
        finally:
            proxy.stop_all(procs)


if __name__ == "__main__":
    main()
