"""Speed of phase diagrams (run: python benchmarks/bench_phase.py [--rounds 60]).

1. Exact solver, r*: eta 0..0.74 (75 values) x lam 1e-6..1e-2 (41, log), K = 4, n = 500,
   c = .4, d = .1, symmetric exact-count noise, rounds 0..60: 3,075 cells, one batched
   ExactSolver advanced by distill.run_rounds. Reported: the first call in the process (JIT
   compilation of the two padded batch sizes included), a second, warm call, and the command
   `sdtheory phase` from a cold process (empty / filled compilation cache); the largest
   certificate, failed cells, and the exact minus the closed-form r*.
2. For scale: the same cells one at a time (ExactSolver + self_distill) on 30 random cells,
   extrapolated to the grid; their r* must agree with the batched result.
3. Linear solver (closed form, vectorised numpy), r*: 1000 x 1000 cells over the same ranges.
   Goal: under 5 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
from _common import cold, machine

import sdtheory as sd
from sdtheory.jobs.sweep import phase_diagram
from sdtheory.problem import build_problem

X, Y = "eta:0:0.74:75", "lam:1e-6:1e-2:41:log"


def exact(base, R: int):
    t = time.perf_counter()
    res = phase_diagram(base, X, Y, max_rounds=R)
    first = time.perf_counter() - t
    t = time.perf_counter()
    res = phase_diagram(base, X, Y, max_rounds=R)
    warm = time.perf_counter() - t
    d, cf = res.data, res.values["r_star_closed_form"]
    both = np.isfinite(d) & np.isfinite(cf)
    print(f"1. exact r*, 75 x 41 = {d.size} cells, rounds 0..{R}: {first:.1f} s first call "
          f"(compilation included), {warm:.1f} s warm")
    print(f"   largest certificate {np.max(res.values['certificate']):.1e}, failed cells "
          f"{int(res.failed.sum())}, r* defined in {int(np.isfinite(d).sum())} cells; exact - "
          f"closed form r* in [{int(np.min(d[both] - cf[both]))}, "
          f"{int(np.max(d[both] - cf[both]))}]")
    with tempfile.TemporaryDirectory() as out:
        a, b = cold(["phase", "--x", X, "--y", Y, "--max-rounds", str(R), "--out", out])
    print(f"   sdtheory phase from a cold process: {a:.1f} s (empty compilation cache), "
          f"{b:.1f} s (cache filled)")
    return res


def per_cell(base, res, R: int, cells: int = 30) -> None:
    rng = np.random.default_rng(0)
    xs, ys = res.x_values, res.y_values
    t = time.perf_counter()
    agree = 0
    for _ in range(cells):
        iy, ix = int(rng.integers(ys.size)), int(rng.integers(xs.size))
        p = build_problem(dataclasses.replace(base, eta=float(xs[ix]), lam=float(ys[iy])))
        r = sd.self_distill(sd.ExactSolver(gram=p.model, labels=p.corruption, lam=p.config.lam),
                            R).r_star
        v = res.data[iy, ix]
        agree += (r is None and np.isnan(v)) or r == v
    sec = time.perf_counter() - t
    print(f"2. one cell at a time (ExactSolver + self_distill): {cells} random cells in "
          f"{sec:.1f} s -> about {sec / cells * xs.size * ys.size:.0f} s for the grid; r* agrees "
          f"with the batched solver in {agree}/{cells}")


def linear(base, R: int) -> None:
    x, y = "eta:0:0.74:1000", "lam:1e-6:1e-2:1000:log"
    best = np.inf
    for _ in range(2):
        t = time.perf_counter()
        res = phase_diagram(base, x, y, solver="linear", max_rounds=R)
        best = min(best, time.perf_counter() - t)
    d, cf = res.data, res.values["r_star_closed_form"]
    expect = np.where(cf <= R, cf, np.nan)
    same = np.array_equal(np.isnan(d), np.isnan(expect)) and np.array_equal(
        d[np.isfinite(d)], expect[np.isfinite(expect)])
    print(f"3. linear r*, 1000 x 1000 cells, rounds 0..{R}: {best:.2f} s (best of 2); equals the "
          f"closed form capped at R: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--skip-per-cell", action="store_true")
    args = ap.parse_args()
    sd.enable_x64()
    print(f"machine: {machine()}")
    base = sd.ProblemConfig(K=4, n=500, c=0.4, d=0.1, noise="sym")
    res = exact(base, args.rounds)
    if not args.skip_per_cell:
        per_cell(base, res, args.rounds)
    linear(base, args.rounds)
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
