"""Speed of phase diagrams (run: python benchmarks/bench_phase.py [--rounds 60]).

1. Exact solver, r*: eta 0..0.74 (75 values) x lam 1e-6..1e-2 (41, log), K=4, n=500, c=.4,
   d=.1, symmetric noise with exact counts, rounds 0..60: 3,075 cells through the batched
   group-reduced Newton solver. Goal: under 2 minutes on a 2-core machine. Reported: the first
   call (JIT compilation included) and a second, warm call; the largest certificate; failed
   cells; agreement with the closed form.
2. For scale: the same cells one by one (GroupSolver + distill.self_distill) on a random
   sample of cells, extrapolated to the grid.
3. Linear solver (closed form, vectorised numpy), r*: 1000 x 1000 cells over the same ranges.
   Goal: under 5 s.

The machine load (os.getloadavg) is printed before and after: timings on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402

import sdtheory as sd  # noqa: E402
from sdtheory import phase  # noqa: E402
from sdtheory.distill import self_distill  # noqa: E402
from sdtheory.simulate import SimConfig, build_problem  # noqa: E402
from sdtheory.solve import GroupSolver, SolverError  # noqa: E402


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def exact(base: SimConfig, R: int) -> phase.PhaseResult:
    x, y = "eta:0:0.74:75", "lam:1e-6:1e-2:41:log"
    t = time.perf_counter()
    res = phase.sweep(base, x, y, quantity="r_star", solver="exact", max_rounds=R)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    res = phase.sweep(base, x, y, quantity="r_star", solver="exact", max_rounds=R)
    warm = time.perf_counter() - t
    d, cf = res.data, res.values["r_star_closed_form"]
    both = np.isfinite(d) & np.isfinite(cf)
    print(f"1. exact r*, 75 x 41 = {d.size} cells, rounds 0..{R}: {cold:.1f} s first call "
          f"(JIT included), {warm:.1f} s warm")
    print(f"   largest certificate {np.max(res.values['certificate']):.1e}, failed cells "
          f"{int(res.failed.sum())}, r* defined in {int(np.isfinite(d).sum())} cells; exact - "
          f"closed form r* in [{int(np.min(d[both] - cf[both]))}, "
          f"{int(np.max(d[both] - cf[both]))}]")
    return res


def per_cell(base: SimConfig, res: phase.PhaseResult, R: int, cells: int = 30) -> None:
    rng = np.random.default_rng(0)
    xs, ys = res.x_values, res.y_values
    t = time.perf_counter()
    agree = done = 0
    for _ in range(cells):
        iy, ix = int(rng.integers(ys.size)), int(rng.integers(xs.size))
        p = build_problem(dataclasses.replace(base, eta=float(xs[ix]), lam=float(ys[iy])))
        try:
            r = self_distill(GroupSolver(p.model, p.corruption.counts, p.config.lam, tol=1e-10),
                             R).r_star
        except SolverError:
            continue
        done += 1
        v = res.data[iy, ix]
        agree += (r is None and np.isnan(v)) or r == v
    sec = time.perf_counter() - t
    print(f"2. one cell at a time (GroupSolver + self_distill): {done} random cells in {sec:.1f} s "
          f"-> about {sec / max(done, 1) * xs.size * ys.size:.0f} s for the grid; "
          f"r* agrees with the batched solver in {agree}/{done}")


def linear(base: SimConfig, R: int) -> None:
    x, y = "eta:0:0.74:1000", "lam:1e-6:1e-2:1000:log"
    best = np.inf
    for _ in range(2):
        t = time.perf_counter()
        res = phase.sweep(base, x, y, quantity="r_star", solver="linear", max_rounds=R)
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
    print(f"before: {load()}")
    base = SimConfig(K=4, n=500, c=0.4, d=0.1, noise="sym")
    res = exact(base, args.rounds)
    if not args.skip_per_cell:
        per_cell(base, res, args.rounds)
    linear(base, args.rounds)
    print(f"after: {load()}; {time.perf_counter() - T_START:.1f} s from process start")


if __name__ == "__main__":
    main()
