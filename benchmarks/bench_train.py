"""Speed of gradient training to the fixed point (E): L-BFGS and GD on the two-level model.

Run: ``python benchmarks/bench_train.py [--n 500] [--lam 1e-5]``. For each setting it prints the
time to build explicit features (feature_factor), the L-BFGS iterations and wall time (first call
includes compilation; the second is warm), the residual of (E), and the same for GD with step 1/L
under an iteration cap. Targets: one-hot labels with every 4th label moved to the next class.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sdtheory
from sdtheory.models import Features, feature_factor
from sdtheory.noise import corruption_from_labels
from sdtheory.solvers import TrainedSolver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--n", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--lam", type=float, nargs="+", default=[1e-3, 1e-5])
    ap.add_argument("--c", type=float, default=0.4)
    ap.add_argument("--d", type=float, default=0.1)
    ap.add_argument("--gd-iters", type=int, default=5_000)
    args = ap.parse_args()
    sdtheory.enable_x64()
    K = args.K
    for n in args.n:
        N = K * n
        y = np.repeat(np.arange(K), n)
        G = (1 - args.c) * np.eye(N) + (args.c - args.d) * (y[:, None] == y[None, :]) + args.d
        t = time.perf_counter()
        X = feature_factor(G)
        t_factor = time.perf_counter() - t
        given = y.copy()
        given[::4] = (given[::4] + 1) % K
        T = np.eye(K)[given]
        for lam in args.lam:
            labels = corruption_from_labels(y, given)
            solver = TrainedSolver(gram=Features(X), labels=labels, lam=lam)
            t = time.perf_counter()
            solver.fit(T)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            fit = solver.fit(T)
            warm = time.perf_counter() - t
            print(f"K={K} n={n} N={N} lam={lam:g}: factor {t_factor:.2f} s | lbfgs "
                  f"{fit.info.iterations} it, {cold:.2f} s cold, {warm:.3f} s warm, "
                  f"residual {fit.residual:.2e}")
            gd = TrainedSolver(gram=Features(X), labels=labels, lam=lam, method="gd",
                               max_iter=args.gd_iters)
            t = time.perf_counter()
            fit_gd = gd.fit(T)
            print(f"    gd: {fit_gd.info.iterations} it, {time.perf_counter() - t:.2f} s, "
                  f"residual {fit_gd.residual:.2e}, loss gap "
                  f"{fit_gd.info.loss - fit.info.loss:.2e}")


if __name__ == "__main__":
    main()
