"""One server for bench/proxy.py, in its own process: the origin, gate, or gate with gating off.

python bench/serve.py origin   --port 9101
python bench/serve.py gate     --port 9102 --upstream http://127.0.0.1:9101
python bench/serve.py gate-off --port 9103 --upstream http://127.0.0.1:9101
"""

from __future__ import annotations

import argparse
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
        from gate import pagebody, settings
        from gate.app import create_app
        from gate.rewrite import Outcome

        env = {"GATE_SECRET_KEY": "bench-key-0123456789abcdef"}
        app = create_app(settings.load({"upstream": args.upstream}, env))
        if args.kind == "gate-off":  # the same proxy path with the rewrite switched off: the baseline

            class PassThrough:
                """In the rewriter's place: every byte as it came, nothing found."""

                def __init__(self, plan: object, encoding: str = "utf-8") -> None:
                    self.outcome = Outcome()

                def feed(self, data: bytes) -> bytes:
                    return data

                def close(self) -> bytes:
                    return b""

            pagebody.PageRewriter = PassThrough  # type: ignore[misc,assignment]
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, loop="auto", http="auto")


if __name__ == "__main__":
    main()
