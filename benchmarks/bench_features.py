"""Exact solver in feature space at CIFAR-100 size (run: python benchmarks/bench_features.py).

``FeatureSolver(gram=Features(X), ...)`` (what ``ExactSolver`` picks for features) solves the
fixed point (E) for the weights W^T (D x K) by Newton-CG with products with X and X^T only
(docs/theory.md section 2.5); the N x N Gram matrix is never formed.

Problem: N = 50,000 samples (K = 100 classes of n = 500), D = 512 Gaussian-mixture features
(:func:`sdtheory.models.gmm_features`: class means plus isotropic noise, E|x|^2 = 1; c = 0.1,
d = 0.07, so that the classes overlap: the Bayes accuracy is about 0.85, like a linear probe
on pretrained CIFAR-100 features), sampled symmetric label noise eta = 0.5, lam = 1e-3 and
1e-4 (linear-probing values; others with --lam).

Per lam: the setup (leading eigenpairs of X^T X for the preconditioner), then ONE round, the
teacher from zero weights, solved twice: the first call includes JIT compilation, the second
is warm. Goal: the teacher to certificate 1e-10 in <= 60 s. Reported: Newton steps, CG
iterations per Newton step, certificate, training accuracy and the accuracy on held-out
features through the returned weights W. ``--variants`` also solves with other
preconditioners (k = D eigenpairs, no preconditioner) to compare CG iterations.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import numpy as np
from _common import machine

import sdtheory as sd
from sdtheory.models import Features, gmm_features
from sdtheory.solvers import FeatureSolver


def ram() -> str:
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        return f"{kb / 2 ** 20:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def matmul_seconds(X: np.ndarray, K: int) -> float:
    """Wall time of one product X Y plus one X^T R (Y: D x K, R: N x K) under jit, best of 3:
    what one CG iteration costs besides the preconditioner."""
    import jax
    import jax.numpy as jnp

    f = jax.jit(lambda A, Y: A.T @ (A @ Y))
    Xd, Y = jnp.asarray(X), jnp.ones((X.shape[1], K))
    f(Xd, Y).block_until_ready()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        f(Xd, Y).block_until_ready()
        times.append(time.perf_counter() - t)
    return min(times)


def variant(solver: FeatureSolver, which: str) -> FeatureSolver:
    """The same solver with another preconditioner: "rule" (as built), "full" (every
    eigenpair of X^T X), "none" (the identity)."""
    if which == "rule":
        return solver
    import jax.numpy as jnp

    D = solver.X.shape[1]
    out = copy.copy(solver)
    if which == "full":
        nu, V = np.linalg.eigh(solver.X.T @ solver.X)
        Vf, nu, rest = V[:, ::-1].copy(), np.maximum(nu[::-1], 0.0).copy(), 0.0
    else:
        Vf, nu, rest = np.zeros((D, 0)), np.zeros(0), 0.0
    out._problem = dataclasses.replace(solver._problem, Vf=jnp.asarray(Vf),
                                       nu=jnp.asarray(nu), nu_rest=jnp.asarray(rest))
    return out


def one(solver: FeatureSolver, label: str, tol: float, Xtest, ytest) -> None:
    T = solver.targets0()
    t = time.perf_counter()
    fit = solver.fit(T)
    first = time.perf_counter() - t
    t = time.perf_counter()
    fit = solver.fit(T)
    warm = time.perf_counter() - t
    info = fit.info
    acc = float(np.mean(fit.P.argmax(1) == solver.true))
    test = float(np.mean((Xtest @ info.weights.T).argmax(1) == ytest))
    ok = "met" if fit.residual <= 1e-10 and warm <= 60 else "NOT met"
    print(f"    {label:<6} first call {first:6.1f} s (compilation included), warm {warm:6.1f} s | "
          f"{info.iterations} Newton steps, CG {info.krylov_iterations} | "
          f"certificate {fit.residual:.1e} ({info.status}) | train acc {acc:.4f}, held-out acc "
          f"{test:.4f} | goal {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lam", type=float, nargs="+", default=[1e-3, 1e-4])
    ap.add_argument("--n", type=int, default=500, help="samples per class (K = 100)")
    ap.add_argument("--D", type=int, default=512)
    ap.add_argument("--tol", type=float, default=1e-12, help="certificate the solver aims for")
    ap.add_argument("--variants", action="store_true",
                    help="also solve with k = D eigenpairs and with no preconditioner")
    args = ap.parse_args()
    sd.enable_x64()
    K, c, d = 100, 0.1, 0.07
    print(f"machine: {machine()}; {ram()}")
    t = time.perf_counter()
    X, y = gmm_features(K, args.n, c, d, args.D, seed=0)
    cor = sd.corrupt_sampled(sd.transition_matrix("sym", K, 0.5), y, seed=0)
    Xtest, ytest = gmm_features(K, 100, c, d, args.D, seed=1)
    N = X.shape[0]
    print(f"N = {N}, D = {args.D}, K = {K}, gmm c = {c}, d = {d}, sampled sym eta = 0.5 "
          f"({np.mean(cor.given != cor.true):.3f} flipped); data {time.perf_counter() - t:.1f} s; "
          f"X {X.nbytes / 2 ** 20:.0f} MiB, an N x K array {N * K * 8 / 2 ** 20:.0f} MiB")
    print(f"one product X Y plus X^T R (K columns): {matmul_seconds(X, K):.3f} s")
    for lam in args.lam:
        t = time.perf_counter()
        s = FeatureSolver(gram=Features(X), labels=cor, lam=lam, tol=args.tol)
        setup = time.perf_counter() - t
        sp = s.spectrum
        print(f"  lam = {lam:g} (s = 1/(N lam) = {1 / (N * lam):.3g}): setup {setup:.1f} s "
              f"({sp['method']} of X^T X, k = {sp['k']} eigenpairs kept, nu_1 = {sp['nu'][0]:.4g}, "
              f"nu_rest = {sp['nu_rest']:.4g})")
        for which in (("rule", "full", "none") if args.variants else ("rule",)):
            one(variant(s, which), which, args.tol, Xtest, ytest)
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
