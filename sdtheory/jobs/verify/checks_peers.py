"""Checks against peers' published numbers and identities: squared-loss (kernel-ridge)
self-distillation (docs/theory.md section 14)."""

from __future__ import annotations

import numpy as np

from sdtheory.jobs.verify.cases import named
from sdtheory.jobs.verify.harness import Tally, check
from sdtheory.kernel_ridge import KernelRidgeSD, borup_andersen_toy, rbf_kernel

PUBLISHED_DIGITS = 1e-5     # the notebook prints 5 decimals


@check("borup_andersen_toy",
       "kernel-ridge SD on Borup & Andersen's toy example (11 samples of sin(2 pi x), RBF "
       "gamma = 80, ridge 0.2): test MSE of steps 1-6 equals the published values for "
       "alpha = 0 and 0.25; margin = 1e-5 - max |ours - published|")
def _borup_andersen_toy(t: Tally) -> None:
    for alpha in (0.0, 0.25):
        res = borup_andersen_toy(alpha)
        dev = np.abs(np.asarray(res["mse"]) - np.asarray(res["reference"]))
        for step, (ours, ref, d) in enumerate(zip(res["mse"], res["reference"], dev), 1):
            t.case(named(alpha=alpha, step=step), PUBLISHED_DIGITS - d, ours=ours,
                   published=ref)


@check("kernel_ridge_powers",
       "repeated kernel ridge regression (Mobahi et al. 2020): R explicit solves with "
       "(G + N lam I) equal the spectral filter a^(r+1) (alpha = 0) and t_r (alpha != 0) to "
       "round-off; margin = 1 - error / (20 (r+1) eps cond(G + N lam I) max|P|)")
def _kernel_ridge_powers(t: Tally) -> None:
    rng = np.random.default_rng(21)
    eps = np.finfo(float).eps
    for case in range(3 if t.quick else 12):
        N = int(rng.integers(5, 60))
        x = rng.uniform(0, 1, (N, int(rng.integers(1, 4))))
        G = rbf_kernel(x, x, float(10 ** rng.uniform(-0.5, 1.5)))
        lam = float(10 ** rng.uniform(-4, -1))
        alpha = float(rng.choice([0.0, 0.3, -0.5]))
        Y = rng.standard_normal((N, 2))
        R = 8
        sd = KernelRidgeSD(G, lam, alpha)
        spectral = sd.train_outputs(Y, range(R))
        A = G + N * lam * np.eye(N)
        cond = np.linalg.cond(A)
        T, explicit = Y, []
        for _ in range(R):
            P = G @ np.linalg.solve(A, T)
            explicit.append(P)
            T = alpha * Y + (1 - alpha) * P
        err = np.abs(np.asarray(explicit) - spectral).max(axis=(1, 2))
        scale = np.abs(np.asarray(explicit)).max()
        bound = 20 * np.arange(1, R + 1) * eps * cond * max(scale, 1.0)
        t.case(named(case=case, N=N, lam=lam, alpha=alpha, cond=cond),
               float(np.min(1 - err / bound)), max_error=float(err.max()))


@check("takanami_optimal_error",
       "Takanami et al.'s binary Gaussian mixture x = +-v/sqrt(D) + sqrt(Delta) z, no label "
       "noise, alpha = N/D = 2, Delta = 1: the exact softmax teacher at lam = 100 approaches "
       "the optimal error H(1/sqrt(Delta (1 + Delta/alpha))) as D grows; margin = 0.012 - "
       "|mean error - H| at the largest D (3 seeds), and the gap shrinks with D")
def _takanami_optimal_error(t: Tally) -> None:
    from sdtheory.models import Features, binary_gmm
    from sdtheory.noise import corruption_from_labels
    from sdtheory.population import population_accuracy, takanami_optimal_error
    from sdtheory.solvers import ExactSolver

    delta, alpha, lam = 1.0, 2.0, 100.0
    H = takanami_optimal_error(delta, alpha)
    Ds = (100, 400) if t.quick else (100, 400, 1600)
    gaps = []
    for D in Ds:
        errs = []
        for seed in range(3):
            X, y, means = binary_gmm(int(alpha * D), D, delta, seed)
            s = ExactSolver(gram=Features(X), labels=corruption_from_labels(y, y, 2), lam=lam)
            W = s.fit(s.targets0()).info.weights
            errs.append(1.0 - float(np.mean(population_accuracy(W, means, np.sqrt(delta))[0])))
        gaps.append(float(np.mean(errs)) - H)
        t.note(f"D = {D}: mean test error {np.mean(errs):.4f} (seed std {np.std(errs):.4f}), "
               f"optimal {H:.4f}")
    shrinking = all(abs(b) < abs(a) for a, b in zip(gaps, gaps[1:]))
    tol = 0.012 if not t.quick else 0.03
    t.case(named(D=Ds[-1], alpha=alpha, delta=delta, lam=lam), tol - abs(gaps[-1]),
           passed=shrinking and abs(gaps[-1]) < tol, gaps=gaps)


@check("ridge_sd_proportional",
       "ridge self-distillation in the proportional limit (sec. 14.1): teacher risk, pure "
       "student risk, cross term, the risk at xi*, xi* and the gain in closed form "
       "(orthogonal design; isotropic Gaussian design through the Marchenko-Pastur law) "
       "equal the seed means of finite samples trained by KernelRidgeSD (r^2 = sigma^2 = 1); "
       "margin = 4 - max |seed mean - closed form| / standard error of the seed mean")
def _ridge_sd_proportional(t: Tally) -> None:
    from sdtheory.kernel_ridge import ridge_sd_agreement

    cases = [("gaussian", 0.5, 0.1), ("orthogonal", 0.5, 1.0)]
    if not t.quick:
        cases += [("gaussian", 2.0, 0.3), ("orthogonal", 0.25, 0.02), ("gaussian", 1.0, 3.0)]
    n, seeds = (200, range(6)) if t.quick else (800, range(8))
    for design, gamma, lam in cases:
        res = ridge_sd_agreement(design, n, gamma, lam, seeds)
        th, z = res["theory"], res["z"]
        worst = max(z, key=lambda k: abs(z[k]))
        t.case(named(design=design, gamma=gamma, lam=lam, n=n, seeds=len(seeds)),
               4.0 - abs(z[worst]), worst=worst, z=z[worst], xi_star=th.xi_star,
               gain=th.gain, teacher=th.teacher)
        t.note(f"{design} gamma={gamma:g} lam={lam:g}: xi* {th.xi_star:.4f} (samples "
               f"{res['mean']['xi_star']:.4f} +- {res['se']['xi_star']:.4f}), gain "
               f"{th.gain:.5f} (samples {res['mean']['gain']:.5f} +- "
               f"{res['se']['gain']:.5f}), teacher {th.teacher:.5f} (samples "
               f"{res['mean']['teacher']:.5f})")
