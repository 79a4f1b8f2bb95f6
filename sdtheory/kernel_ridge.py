"""Self-distillation with the squared loss: kernel ridge regression, round after round, with
label-weighted targets (docs/theory.md section 14).

One training of a linear model on features X (or of kernel ridge regression on the kernel
matrix G) with the squared loss and ridge lam,

    L(W) = 1/(2N) ||X W^T - T||^2 + lam/2 ||W||^2,

has the training outputs P = A T, A = G (G + N lam I)^{-1}, and the outputs k(x)^T (G + N lam
I)^{-1} T at a point x with kernel row k(x). Round r >= 1 trains on the label-weighted targets

    T_r = alpha Y + (1 - alpha) P_{r-1},    T_0 = Y,

alpha the weight of the given labels Y (Borup & Andersen's alpha; Das & Sanghavi's teacher
weight xi is 1 - alpha, and xi > 1, alpha < 0, is allowed: the squared loss takes any real
targets). Plain SD is alpha = 0 (Mobahi et al.: P_r = A^(r+1) Y). In the eigenbasis of G
(eigenvalues mu, a = mu / (mu + N lam)), T_r has the coefficients t_r(a) times those of Y:

    t_r = alpha (1 - b^r) / (1 - b) + b^r,    b = (1 - alpha) a,

so every round is one spectral filter, computed without iterating (:func:`target_filter`).
"""

from __future__ import annotations

import numpy as np

from sdtheory._validate import as_int, check_label_weight, check_lam
from sdtheory.solvers.linear import AveragingOperator

__all__ = ["KernelRidgeSD", "borup_andersen_toy", "output_filter", "rbf_kernel",
           "target_filter"]


def target_filter(a, alpha, r, xp=np):
    """t_r(a): the coefficient of round r's targets on an eigenvector of G with averaging
    eigenvalue a (module docstring), for rounds r (an int or an array, broadcast against a).

    The geometric sum is evaluated as sum_{j<r} b^j, stable at b = 1 (alpha < 0 can reach it).
    ``xp``: the array namespace (numpy, or jax.numpy for gradients in alpha and a).
    """
    a = xp.asarray(a, dtype=xp.float64)
    r = xp.asarray(r, dtype=xp.float64)
    b = (1.0 - alpha) * a
    br = b ** r
    near = xp.abs(1.0 - b) <= 1e-12
    geo = xp.where(near, r, (1.0 - br) / xp.where(near, 1.0, 1.0 - b))
    return alpha * geo + br


def output_filter(a, alpha, r, xp=np):
    """a t_r(a): the coefficient of round r's training outputs P_r = A T_r on an eigenvector of
    G (a^(r+1) for alpha = 0); arguments as :func:`target_filter`."""
    return a * target_filter(a, alpha, r, xp=xp)


def rbf_kernel(A, B, gamma: float) -> np.ndarray:
    """k(a, b) = exp(-gamma ||a - b||^2) between the rows of A (M, D) and B (N, D); gamma > 0."""
    from sdtheory._validate import as_float

    g = as_float(gamma, "gamma")
    if not g > 0:
        raise ValueError(f"gamma must be a number > 0, got {g:g}")
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    B = np.atleast_2d(np.asarray(B, dtype=np.float64))
    d2 = (np.sum(A * A, 1)[:, None] + np.sum(B * B, 1)[None, :] - 2.0 * A @ B.T)
    return np.exp(-g * np.maximum(d2, 0.0))


class KernelRidgeSD:
    """Squared-loss self-distillation on a PSD Gram (kernel) matrix G (module docstring).

    Args:
      gram: (N, N) symmetric positive semi-definite kernel matrix of the training points.
      lam: ridge lam in [1e-8, 1e3] (the ridge of kernel ridge regression written as
        (G + rho I)^{-1} is rho = N lam).
      alpha: weight of the given labels in the targets of rounds >= 1 (0: plain SD; below 0 the
        teacher weight 1 - alpha exceeds 1).

    Attributes:
      a: (N,) averaging eigenvalues mu / (mu + N lam), ascending; op: the
        :class:`~sdtheory.solvers.AveragingOperator` with ridge N lam that holds G's spectrum.
    """

    def __init__(self, gram, lam: float, alpha: float = 0.0):
        self.lam = check_lam(lam)
        self.alpha = check_label_weight(alpha)
        self.op = AveragingOperator(gram, self.lam, K=1)      # ridge N lam: the squared loss
        self.N = int(self.op.N)
        self.a = self.op.a

    def _rounds(self, rounds) -> np.ndarray:
        r = np.atleast_1d(np.asarray(rounds))
        for v in r:
            as_int(v, "rounds", lo=0, hi=100_000)
        return r.astype(np.float64)

    def train_outputs(self, Y, rounds) -> np.ndarray:
        """P_r = A T_r on the training points for each round r of ``rounds``: (R, N, K)
        (or (N,) columns when Y is (N,))."""
        Y = np.asarray(Y, dtype=np.float64)
        r = self._rounds(rounds)
        coef = output_filter(self.a[None, :], self.alpha, r[:, None])
        return self.op.apply_filter(Y, coef)

    def predict(self, K_test, Y, rounds) -> np.ndarray:
        """Outputs k(x)^T (G + N lam I)^{-1} T_r at test points with kernel rows ``K_test``
        (M, N), for each round r of ``rounds``: (R, M, K) (or (R, M) when Y is (N,))."""
        Y = np.asarray(Y, dtype=np.float64)
        K_test = np.asarray(K_test, dtype=np.float64)
        if K_test.ndim != 2 or K_test.shape[1] != self.N:
            raise ValueError(f"K_test must be (M, {self.N}) kernel rows, got shape "
                             f"{K_test.shape}")
        r = self._rounds(rounds)
        coef = target_filter(self.a[None, :], self.alpha, r[:, None]) / (
            self.op.mu[None, :] + self.N * self.lam)
        inner = self.op.apply_filter(Y, coef)               # (G + N lam)^{-1} T_r
        return np.einsum("mn,rn...->rm...", K_test, inner)


def borup_andersen_toy(alpha: float, steps: int = 6) -> dict:
    """The kernel-ridge toy example of Borup & Andersen (NeurIPS 2021), from the bundled
    setting ``sdtheory/data/borup_andersen_toy.json`` (11 noisy samples of sin(2 pi x), RBF
    kernel gamma = 80, ridge 0.2 written as (K + 0.2 I)^{-1}, i.e. lam = 0.2 / 11).

    Returns:
      dict with "mse" (test MSE against sin(2 pi x) on the 101-point grid, steps 1..steps:
      step 1 is the teacher, step t the student of round t - 1), "reference" (the published
      values for this alpha, or None), and "setting" (the JSON document).
    """
    import json
    from importlib import resources

    doc = json.loads(resources.files("sdtheory").joinpath("data/borup_andersen_toy.json")
                     .read_text())
    x, y = np.asarray(doc["x"]), np.asarray(doc["y"])
    grid = np.arange(0, 1.01, 0.01)
    G = rbf_kernel(x[:, None], x[:, None], doc["gamma"])
    sd = KernelRidgeSD(G, doc["ridge"] / x.size, alpha)
    pred = sd.predict(rbf_kernel(grid[:, None], x[:, None], doc["gamma"]), y, range(steps))
    mse = np.mean((pred - np.sin(2 * np.pi * grid)) ** 2, axis=1)
    ref = doc["reference_mse"].get(f"{float(alpha):g}")
    return {"mse": mse.tolist(), "reference": ref, "setting": doc}
