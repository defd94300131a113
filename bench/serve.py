"""One server for bench/proxy.py, in its own process: the origin, gate, or gate with gating off.

python bench/serve.py origin   --port 9101
python bench/serve.py gate     --port 9102 --upstream http://127.0.0.1:9101
python bench/serve.py gate-off --port 9103 --upstream http://127.0.0.1:9101
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import uvicorn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["origin", "gate", "gate-off"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream")
    args = ap.parse_args()
    if args.kind == "origin":
        from gate.demo import create_demo_app

        app = create_demo_app()
    else:
        from gate import proxy, settings
        from gate.app import create_app

        env = {"GATE_SECRET_KEY": "bench-key-0123456789abcdef"}
        app = create_app(settings.load({"upstream": args.upstream}, env))
        if args.kind == "gate-off":  # the same proxy path with the rewrite switched off: the baseline
            original = proxy.page_plan

            def no_gating(*a, **kw):
                return dataclasses.replace(original(*a, **kw), gating=False)

            proxy.page_plan = no_gating
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, loop="auto", http="auto")


if __name__ == "__main__":
    main()
