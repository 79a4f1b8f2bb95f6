"""`sdtheory figures` (the README's main job) from a cold process, per figure and in all
(run: python benchmarks/bench_figures.py [--compare REV] [--runs 2] [--only NAME ...]).

Each run is a fresh `python -m sdtheory figures --out TMP` with its own JAX compilation cache:
the first run of a checkout fills an empty cache, the later ones find it filled. The seconds of
each figure are read from the command's own per-figure lines (stderr); the total is the wall
time of the process (imports and compilation included). With ``--compare REV`` the runs
alternate between a worktree of REV and this checkout, each with its own cache.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^sdtheory figures: (\w+)\s+([0-9.]+) s\s+done")


def run_once(checkout: Path, cache: Path, out: Path, only) -> dict[str, float]:
    """One cold `sdtheory figures`: seconds per figure and the process's wall time."""
    env = dict(os.environ, PYTHONPATH=str(checkout), SDTHEORY_JAX_CACHE=str(cache))
    argv = [sys.executable, "-m", "sdtheory", "figures", "--out", str(out)]
    for name in only or ():
        argv += ["--only", name]          # the option takes one name and repeats
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=checkout)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"sdtheory figures failed in {checkout}: {r.stderr.strip()[-2000:]}")
    times = {}
    for line in r.stderr.splitlines():
        m = LINE.match(line.strip())
        if m:
            times[m.group(1)] = float(m.group(2))
    times["total (wall)"] = wall
    return times


def table(rows: dict[str, dict[str, list[float]]], sides: list[str]) -> None:
    """Per figure and side: the first run (cache empty) and the later runs (cache filled)."""
    print(f"{'figure':24s}" + "".join(f"{s + ' empty':>16s}{s + ' filled':>22s}" for s in sides))
    for name, by in rows.items():
        cells = []
        for s in sides:
            v = by.get(s, [])
            first = f"{v[0]:.1f} s" if v else "-"
            rest = (f"{np.min(v[1:]):.1f}..{np.max(v[1:]):.1f} s" if len(v) > 1 else "-")
            cells.append(f"{first:>16s}{rest:>22s}")
        print(f"{name:24s}" + "".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", metavar="REV", help="alternate with a worktree of REV")
    ap.add_argument("--runs", type=int, default=2,
                    help="runs of each checkout (the first with an empty cache)")
    ap.add_argument("--only", nargs="+", help="figures to run (default all)")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _common import machine

    print(f"machine: {machine()}", flush=True)
    root = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sides = {"this": root}
        if args.compare:
            other = tmp / "base"
            subprocess.run(["git", "-C", str(root), "worktree", "add", "-q", "--detach",
                            str(other), args.compare], check=True)
            sides = {args.compare[:10]: other, "this": root}
        rows: dict[str, dict[str, list[float]]] = {}
        try:
            for i in range(args.runs):
                for label, path in sides.items():
                    out = tmp / f"out-{label}-{i}"
                    times = run_once(path, tmp / f"cache-{label}", out, args.only)
                    for k, v in times.items():
                        rows.setdefault(k, {}).setdefault(label, []).append(v)
                    print(f"run {i + 1}/{args.runs} {label}: " + ", ".join(
                        f"{k} {v:.1f} s" for k, v in times.items()), flush=True)
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force",
                                str(tmp / "base")], check=True)
    table(rows, list(sides))
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
