"""Warm speed of the work users repeat (run: python benchmarks/bench_warm.py [--compare REV]).

Each measure is timed in process after one untimed call (compilation done), as the minimum of
a few repeats:

1. group-reduced exact solve, one round: K = 10, 50, 100, n = 1000, c = .4, d = .1,
   lam = 1e-5, exact-count symmetric noise eta = .5;
2. full N x N exact solver, ten rounds (0..9): K = 4, n = 500 (N = 2000), jitter 0.01,
   lam = 1e-5, sampled symmetric noise eta = .5;
3. feature-space exact solve, one round: N = 50,000 (K = 100 Gaussian-mixture classes of 500,
   D = 512, c = .1, d = .07), sampled symmetric noise eta = .5, lam = 1e-3;
4. exact phase diagram: eta 0..0.74 (75) x lam 1e-6..1e-2 (41, log), K = 4, n = 500,
   rounds 0..60.

With ``--compare REV`` the script runs itself in fresh processes, alternating between this
checkout and a temporary git worktree of REV (the package imported from there), ``--runs``
times each, and prints both sets of numbers side by side: the way a speed claim is measured
here (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _best(fn, repeats: int) -> float:
    fn()                                              # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


MEASURES = ("group", "dense", "features", "phase")


def measure(only=MEASURES) -> dict:
    import sdtheory as sd
    from sdtheory.jobs.sweep import phase_diagram
    from sdtheory.models.features import gmm_features

    sd.enable_x64()
    out = {}
    for K, repeats in ((10, 5), (50, 3), (100, 2)) if "group" in only else ():
        m = sd.two_level(K, 1000, 0.4, 0.1)
        C = sd.exact_counts(sd.transition_matrix("sym", K, 0.5), m.sizes)
        s = sd.ExactSolver(gram=m, labels=C, lam=1e-5)
        T = s.targets0()
        out[f"group K={K}"] = _best(lambda s=s, T=T: s.fit(T), repeats)
    if "dense" in only:
        m = sd.two_level(4, 500, 0.4, 0.1)
        G = sd.jitter(m.dense(), 0.01, seed=0)
        cor = sd.corrupt_sampled(sd.transition_matrix("sym", 4, 0.5), m.labels(), seed=0)
        dense = sd.ExactSolver(gram=G, labels=cor, lam=1e-5)
        out["dense N=2000 x10 rounds"] = _best(lambda: sd.run_rounds(dense, 9), 3)
    if "features" in only:
        X, y = gmm_features(100, 500, 0.1, 0.07, 512, seed=0)
        cor = sd.corrupt_sampled(sd.transition_matrix("sym", 100, 0.5), y, seed=0)
        feat = sd.ExactSolver(gram=sd.Features(X), labels=cor, lam=1e-3)
        T = feat.targets0()
        out["features N=50000 one round"] = _best(lambda: feat.fit(T), 2)
    if "phase" in only:
        base = sd.ProblemConfig(K=4, n=500)
        out["phase 75x41 R=60"] = _best(lambda: phase_diagram(
            base, "eta:0:0.74:75", "lam:1e-6:1e-2:41:log", max_rounds=60), 2)
    return out


def compare(rev: str, runs: int, only) -> None:
    root = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "-q", "--detach", str(other),
                        rev], check=True)
        try:
            rows: dict[str, dict[str, list[float]]] = {}
            for i in range(runs):
                for label, path in (("base", other), ("this", root)):
                    env = dict(os.environ, PYTHONPATH=str(path))
                    r = subprocess.run([sys.executable, __file__, "--json", "--only", *only],
                                       env=env,
                                       capture_output=True, text=True, check=True, cwd=tmp)
                    for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items():
                        rows.setdefault(k, {}).setdefault(label, []).append(v)
                    print(f"run {i + 1}/{runs} {label} done", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force",
                            str(other)], check=True)
    print(f"{'measure':30s} {rev[:10]:>22s} {'this checkout':>22s}  ratio of medians")
    for k, v in rows.items():
        a, b = np.array(v["base"]), np.array(v["this"])
        print(f"{k:30s} {a.min():8.3f}..{a.max():8.3f} s {b.min():8.3f}..{b.max():8.3f} s"
              f"  {np.median(b) / np.median(a):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", metavar="REV", help="alternate with a git revision")
    ap.add_argument("--runs", type=int, default=2, help="runs of each side with --compare")
    ap.add_argument("--json", action="store_true", help="print the numbers as one JSON line")
    ap.add_argument("--only", nargs="+", choices=MEASURES, default=MEASURES,
                    help="the measures to take")
    args = ap.parse_args()
    if args.compare:
        from _common import machine

        print(f"machine: {machine()}")
        compare(args.compare, args.runs, args.only)
        print(f"after: {machine()}")
        return
    out = measure(args.only)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:30s} {v:8.3f} s")


if __name__ == "__main__":
    main()
