"""Speed of `sdtheory verify` with the full grids (run: python benchmarks/bench_verify.py).

The command from a cold process, with an empty JAX compilation cache and with the cache the
first run filled; then the per-check seconds of the second run. Goal: <= 30 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from _common import machine


def main() -> None:
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, SDTHEORY_JAX_CACHE=cache)
        for label in ("empty compilation cache", "cache filled"):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sdtheory", "--quiet", "verify", "--out", out],
                           env=env, capture_output=True, text=True)
            print(f"sdtheory verify (full grids): {time.perf_counter() - t:.1f} s ({label})")
        with open(os.path.join(out, "verify.json")) as fh:
            doc = json.load(fh)
    for c in doc["checks"]:
        print(f"  {c['name']:<26} {c['seconds']:6.1f} s  {c['passed']}/{c['tried']}")
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
