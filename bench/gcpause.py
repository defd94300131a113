"""How long a full garbage collection stops gate's worker, with and without ``gc.freeze()``.

``gate serve`` builds its app, then freezes what exists (gate.cli.settle_memory): settings, registries,
the vendor catalogue and every imported module live as long as the process. A full collection, which
CPython starts now and then in the middle of some request, otherwise walks all of it.

Each mode runs in a fresh process: build the app as ``gate serve`` does, import what the server loads,
optionally settle, then time 15 ``gc.collect()`` calls (median).

    python bench/gcpause.py              # both modes, 3 rounds each, interleaved
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(mode: str) -> None:
    import gc

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("GATE_SECRET_KEY", "bench-key-0123456789abcdef-0123456789")
    os.chdir(tempfile.mkdtemp())
    import httpx  # noqa: F401  (loaded by gate serve too)
    import uvicorn  # noqa: F401

    from gate import cli, settings
    from gate.app import create_app

    create_app(settings.load({"upstream": "http://127.0.0.1:9"}, dict(os.environ)))
    if mode == "frozen":
        cli.settle_memory()
    times = []
    for _ in range(15):
        started = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - started)
    print(
        f"{mode:7s} full collection {statistics.median(times) * 1e3:7.2f} ms, objects walked {len(gc.get_objects()):6,}"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        measure(sys.argv[2])
        return
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    for _ in range(3):
        for mode in ("plain", "frozen"):
            subprocess.run([sys.executable, __file__, "--one", mode], check=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
