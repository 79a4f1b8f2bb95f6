"""Speed of the exact solvers (run: python benchmarks/bench_solve.py).

1. Full exact solver (N x N Gram matrix, Newton + preconditioned GMRES): K=4, n=500 (N=2000),
   lam=1e-5, c=.4, d=.1, symmetric jitter, sampled symmetric noise eta=.5: 10 rounds of SD from
   a cold process (imports and JIT compilation included), every round's certificate reported.
   Goal: under 20 s on a 2-core machine, every residual <= 1e-9.
   eps = 0.01: at N = 2000 the symmetric jitter eps = 0.05 makes G indefinite (smallest
   eigenvalue about -1.97), the training problem is then unbounded and the solver refuses it;
   eps <= 0.0116 keeps G PSD. The eps = 0.05 attempt is reported too.
2. Group-reduced exact solver: one round at n = 500 and at n = 10^6 (goal: milliseconds, the
   same at both sizes).
"""

from __future__ import annotations

import os
import sys
import time

T_START = time.perf_counter()

import numpy as np  # noqa: E402

import sdtheory as sd  # noqa: E402
from sdtheory.distill import self_distill  # noqa: E402
from sdtheory.gram import jitter, nearest_psd, two_level  # noqa: E402
from sdtheory.noise import corrupt_exact, corrupt_sampled, transition_matrix  # noqa: E402
from sdtheory.solve import ExactSolver, GroupSolver, one_hot  # noqa: E402


def full_solver(eps: float, project: bool = False) -> None:
    model = two_level(4, 500, 0.4, 0.1)
    G = jitter(model.dense(), eps, seed=0)
    if project:
        G = nearest_psd(G)
        print(f"  eps={eps} projected on the PSD cone (nearest_psd): diagonal in "
              f"[{G.diagonal().min():.3f}, {G.diagonal().max():.3f}]")
    cor = corrupt_sampled(transition_matrix("sym", 4, 0.5), model.labels(), seed=0)
    t0 = time.perf_counter()
    try:
        solver = ExactSolver(G, 1e-5, given=cor.given, true=cor.true, K=4)
    except ValueError as err:
        print(f"  eps={eps}: refused: {err}")
        return
    t_setup = time.perf_counter() - t0
    res = self_distill(solver, rounds=9)
    t_all = time.perf_counter() - T_START
    per = [rr.info["seconds"] for rr in res.rounds]
    print(f"  eps={eps}: smallest eigenvalue of G {solver.mu[0]:+.4f}; setup (eigh) {t_setup:.2f} s")
    print("  round  seconds  newton  residual  train_acc")
    for rr in res.rounds:
        print(f"  {rr.round:5d}  {rr.info['seconds']:7.3f}  {rr.info['iterations']:6d}  "
              f"{rr.residual:8.1e}  {rr.train_acc:.4f}")
    print(f"  10 rounds: {sum(per):.2f} s in the solver; {t_all:.2f} s from process start "
          f"(imports, matrix building, JIT included); max residual "
          f"{max(rr.residual for rr in res.rounds):.1e}")


def group_solver() -> None:
    for n in (500, 10**6):
        model = two_level(4, n, 0.4, 0.1)
        cor = corrupt_exact(transition_matrix("sym", 4, 0.5), model.sizes)
        gs = GroupSolver(model, cor.counts, 1e-5)
        T = one_hot(gs.given, 4)
        gs.fit(T)                                   # compile
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            fit = gs.fit(T)
            times.append(time.perf_counter() - t0)
        print(f"  n={n:>8d}: one round {1e3 * np.median(times):.2f} ms (median of 20), "
              f"{fit.info['iterations']} Newton steps, residual {fit.residual:.1e}")


if __name__ == "__main__":
    sd.enable_x64()
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()}")
    print("full exact solver, K=4 n=500 lam=1e-5 c=.4 d=.1, sampled sym noise eta=.5")
    for eps in [float(a) for a in sys.argv[1:]] or [0.01]:
        full_solver(eps)
    if not sys.argv[1:]:
        full_solver(0.05)
        full_solver(0.05, project=True)
    print("group-reduced exact solver, K=4 lam=1e-5, exact sym counts eta=.5")
    group_solver()
