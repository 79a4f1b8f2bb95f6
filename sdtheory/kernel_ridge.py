"""Self-distillation with the squared loss: kernel ridge regression, round after round, with
label-weighted targets (docs/theory.md section 14).

One training of a linear model on features X (or of kernel ridge regression on the kernel
matrix G) with the squared loss and ridge lam,

    L(W) = 1/(2N) ||X W^T - T||^2 + lam/2 ||W||^2,

has the training outputs P = A T, A = G (G + N lam I)^{-1}, and the outputs k(x)^T (G + N lam
I)^{-1} T at a point x with kernel row k(x). Round r >= 1 trains on the label-weighted targets

    T_r = alpha Y + (1 - alpha) P_{r-1},    T_0 = Y,

alpha the weight of the given labels Y (Borup & Andersen's alpha; Das & Sanghavi's teacher
weight xi is 1 - alpha; any real alpha is allowed, xi > 1 and xi < 0 included: the squared
loss takes any real targets). Plain SD is alpha = 0 (Mobahi et al.: P_r = A^(r+1) Y). In the
eigenbasis of G (eigenvalues mu, a = mu / (mu + N lam)), T_r has the coefficients t_r(a) times
those of Y:

    t_r = alpha (1 - b^r) / (1 - b) + b^r,    b = (1 - alpha) a,

so every round is one spectral filter, computed without iterating (:func:`target_filter`).

Ridge self-distillation in the proportional limit (docs/theory.md section 14.1): for
y = x^T beta* + noise with isotropic x, ||beta*||^2 = r^2, noise variance sigma^2 and p/n ->
gamma, the excess risks of the teacher, of the pure student and of the mixed student with
teacher weight xi, their cross term, xi* and the gain over the teacher are spectral averages
over the limit law of X^T X / n (:func:`ridge_sd_risk`: orthogonal design, or isotropic
Gaussian design through the Marchenko-Pastur law); :func:`ridge_sd_simulate` measures the same
quantities on finite samples with :class:`KernelRidgeSD`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sdtheory._validate import as_int, check_label_weight, check_lam
from sdtheory.solvers.linear import AveragingOperator

__all__ = ["DESIGNS", "KernelRidgeSD", "RIDGE_SD_QUANTITIES", "RidgeSDRisk",
           "borup_andersen_toy", "mp_stieltjes", "output_filter", "rbf_kernel",
           "ridge_sd_agreement", "ridge_sd_risk", "ridge_sd_simulate", "spectral_mean",
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
    with np.errstate(over="ignore", invalid="ignore"):      # overflow: refused below
        br = b ** r
        near = xp.abs(1.0 - b) <= 1e-12
        geo = xp.where(near, r, (1.0 - br) / xp.where(near, 1.0, 1.0 - b))
        out = alpha * geo + br
    if xp is np and not np.all(np.isfinite(out)):
        # a label weight far from [0, 1] makes |b| = |1 - alpha| a large: b^r overflows
        raise ValueError(f"label weight alpha = {float(alpha):g} over {int(np.max(r))} rounds "
                         "overflows float64 ((1 - alpha) a)^r: use fewer rounds or alpha "
                         "nearer [0, 1]")
    return out


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

    def with_label_weight(self, alpha: float) -> KernelRidgeSD:
        """The same kernel and ridge with another label weight, sharing G's eigendecomposition."""
        import copy

        other = copy.copy(self)
        other.alpha = check_label_weight(alpha)
        return other

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


# --------------------------------------------------------------------------------------------
# Ridge self-distillation in the proportional limit (docs/theory.md section 14.1)
# --------------------------------------------------------------------------------------------

DESIGNS = ("orthogonal", "gaussian")
"""Designs of :func:`ridge_sd_risk`: X^T X / n = I (p <= n), or i.i.d. standard normal
entries (the spectrum of X^T X / n follows the Marchenko-Pastur law of ratio gamma = p/n)."""


def _check_design(design: str, gamma) -> float:
    from sdtheory._validate import as_float, check_choice

    check_choice(design, DESIGNS, "design")
    g = as_float(gamma, "gamma = p/n")
    if not 0.0 < g <= 1e6:
        raise ValueError(f"gamma = p/n must be a number in (0, 1e6], got {g:g}")
    if design == "orthogonal" and g > 1.0:
        raise ValueError(f"the orthogonal design X^T X / n = I needs p <= n: gamma = p/n must "
                         f"be in (0, 1], got {g:g}")
    return g


def mp_stieltjes(lam, gamma) -> float:
    """E[1/(s + lam)] over the Marchenko-Pastur law of ratio gamma (atom 1 - 1/gamma at s = 0
    for gamma > 1 included), lam > 0: the closed form (sqrt((1 + gamma + lam)^2 - 4 gamma)
    - (1 - gamma + lam)) / (2 gamma lam), the root of gamma lam m^2 + (1 - gamma + lam) m = 1
    that is positive (written without cancellation)."""
    lam, g = float(lam), float(gamma)
    b = 1.0 - g + lam
    root = math.sqrt((1.0 - g) ** 2 + lam * (2.0 * (1.0 + g) + lam))   # (1+g+lam)^2 - 4g
    # m = (root - b) / (2 g lam) = 2 / (root + b) where b > 0 (no cancellation either way)
    return 2.0 / (root + b) if b > 0 else (root - b) / (2.0 * g * lam)


def spectral_mean(fn, lam, gamma, design: str = "gaussian") -> np.ndarray:
    """E[fn(s)] over the limit spectrum s of X^T X / n (vector-valued ``fn`` allowed).

    orthogonal: s = 1. gaussian: the Marchenko-Pastur law of ratio gamma, its continuous part
    through s = 1 + gamma + 2 sqrt(gamma) cos(theta), which turns the density into
    (2/pi) sin^2(theta) / s d theta on [0, pi] (no endpoint singularity, even at gamma = 1),
    integrated adaptively, component by component (scipy.integrate.quad, relative
    error 1e-13); for gamma > 1 the
    atom 1 - 1/gamma at s = 0 is added as fn(0).
    """
    from scipy.integrate import quad

    g = _check_design(design, gamma)
    if design == "orthogonal":
        return np.asarray(fn(1.0), dtype=np.float64)
    root = math.sqrt(g)
    low = (1.0 - root) ** 2                   # lower edge of the continuous part

    def density_times_fn(theta):
        c = math.cos(0.5 * theta)
        # s - low = 4 sqrt(gamma) cos^2(theta/2): no cancellation at the lower edge; and
        # sin^2(theta) / s = 4 sin^2(theta/2) cos^2(theta/2) / s, finite at s = 0 (gamma = 1)
        s = low + 4.0 * root * c * c
        w = (4.0 * math.sin(0.5 * theta) ** 2 * c * c / s if s > 0.0
             else math.sin(0.5 * theta) ** 2 / root)
        return (2.0 / math.pi) * w * np.asarray(fn(s), dtype=np.float64)

    # features of width sqrt(lam + low) in theta at the lower edge (theta = pi) when lam and
    # the edge are small: break points at growing distances from it
    width = math.sqrt(lam + low)
    points = sorted(math.pi - width * 4.0 ** k for k in range(12)
                    if 0.0 < math.pi - width * 4.0 ** k)
    # each component on its own, to its own relative error (they differ by orders of
    # magnitude at small lam: the xi* numerator is O(lam^2) there)
    size = np.asarray(fn(1.0)).size
    out = np.array([quad(lambda t, i=i: np.ravel(density_times_fn(t))[i], 0.0, math.pi,
                         epsabs=0.0, epsrel=1e-13, limit=2000, points=points or None)[0]
                    for i in range(size)]).reshape(np.shape(fn(1.0)))
    if g > 1.0:
        out = out + (1.0 - 1.0 / g) * np.asarray(fn(0.0), dtype=np.float64)
    return out


@dataclass(frozen=True)
class RidgeSDRisk:
    """Excess test risks E||beta - beta*||^2 of ridge self-distillation in the proportional
    limit (docs/theory.md section 14.1).

    Attributes:
      teacher: R_T, the teacher's risk (ridge on the labels).
      student: R_S, the pure student's risk (teacher weight xi = 1: ridge on the teacher's
        training outputs).
      cross: E<beta_T - beta*, beta_S - beta*>, so that the student with teacher weight xi has
        the risk (1 - xi)^2 R_T + 2 xi (1 - xi) cross + xi^2 R_S (:meth:`risk`).
      xi_star: the teacher weight minimising that risk, (R_T - cross) / (R_T - 2 cross + R_S)
        (any real: < 0 above the optimal ridge gamma sigma^2 / r^2).
      gain: R_T minus the risk at xi_star, (R_T - cross)^2 / (R_T - 2 cross + R_S) >= 0.
      lam, gamma, r2, sigma2, design: the setting.
    """

    teacher: float
    student: float
    cross: float
    xi_star: float
    gain: float
    lam: float
    gamma: float
    r2: float
    sigma2: float
    design: str

    def risk(self, xi):
        """Risk of the student with teacher weight xi (label weight alpha = 1 - xi)."""
        xi = np.asarray(xi, dtype=np.float64)
        return ((1.0 - xi) ** 2 * self.teacher + 2.0 * xi * (1.0 - xi) * self.cross
                + xi ** 2 * self.student)


def _ridge_sd_moments(lam: float):
    """The spectral functions behind :func:`ridge_sd_risk`, each evaluated directly in
    a = s/(s + lam) and d = lam/(s + lam) (no cancellation at large or small lam):
    d^2, a d / lam, (1 + a) d^2, a^2 d / lam, (1 + a)^2 d^2, a^3 d / lam, a d^2, a^2 d^2,
    a d^3 / lam."""
    def fn(s):
        a, d = s / (s + lam), lam / (s + lam)
        v = s / (s + lam) ** 2                  # a d / lam
        return np.array([d * d, v, (1 + a) * d * d, a * v, (1 + a) ** 2 * d * d, a * a * v,
                         a * d * d, a * a * d * d, d * d * v])
    return fn


def ridge_sd_risk(lam, gamma, *, r2: float = 1.0, sigma2: float = 1.0,
                  design: str = "gaussian") -> RidgeSDRisk:
    """Teacher, pure-student and mixed-student risks of ridge self-distillation in the
    proportional limit, in closed form (docs/theory.md section 14.1).

    Model: y = x^T beta* + noise, x isotropic in R^p (E x x^T = I), ||beta*||^2 = r2 with a
    direction independent of the design (any direction for the orthogonal design), noise
    variance sigma2, n samples, p/n -> gamma. Teacher beta_T = (X^T X + n lam I)^{-1} X^T y;
    the student with teacher weight xi trains the same ridge on (1 - xi) y + xi X beta_T
    (:class:`KernelRidgeSD` with alpha = 1 - xi, round 1). With the averaging eigenvalue
    a = s/(s + lam) and d = 1 - a of each eigenvalue s of X^T X / n,

        R_T   = E[r2 d^2 + gamma sigma2 a d / lam],
        R_S   = E[r2 (1 + a)^2 d^2 + gamma sigma2 a^3 d / lam],
        cross = E[r2 (1 + a) d^2 + gamma sigma2 a^2 d / lam],
        R_T - cross = E[a d^2] (gamma sigma2 / lam - r2),
        R_T - 2 cross + R_S = E[r2 a^2 d^2 + gamma sigma2 a d^3 / lam],

    E over s = 1 (orthogonal design, gamma <= 1) or the Marchenko-Pastur law
    (:func:`spectral_mean`). The two differences are computed from their own integrals, so
    xi* and the gain carry no cancellation.

    Args:
      lam: ridge lam in [1e-8, 1e3] (the ridge n lam of X^T X + n lam I).
      gamma: p / n in (0, 1e6]; (0, 1] for the orthogonal design.
      r2: signal ||beta*||^2 > 0; sigma2: noise variance >= 0.
      design: "orthogonal" or "gaussian".
    """
    from sdtheory._validate import as_float

    lam = check_lam(lam)
    g = _check_design(design, gamma)
    r2, sigma2 = as_float(r2, "signal r^2"), as_float(sigma2, "noise sigma^2")
    if not 0.0 < r2 < math.inf:
        raise ValueError(f"signal r^2 must be a finite number > 0, got {r2:g}")
    if not 0.0 <= sigma2 < math.inf:
        raise ValueError(f"noise sigma^2 must be a finite number >= 0, got {sigma2:g}")
    m = spectral_mean(_ridge_sd_moments(lam), lam, g, design)
    s2 = g * sigma2
    teacher = r2 * m[0] + s2 * m[1]
    cross = r2 * m[2] + s2 * m[3]
    student = r2 * m[4] + s2 * m[5]
    lin = m[6] * (s2 / lam - r2)                  # R_T - cross
    quad = r2 * m[7] + s2 * m[8]                  # R_T - 2 cross + R_S > 0
    return RidgeSDRisk(teacher=float(teacher), student=float(student), cross=float(cross),
                       xi_star=float(lin / quad), gain=float(lin * lin / quad), lam=lam,
                       gamma=g, r2=r2, sigma2=sigma2, design=design)


def ridge_sd_simulate(design: str, n: int, gamma: float, lam: float, *, r2: float = 1.0,
                      sigma2: float = 1.0, xi: float = 0.0, seed: int = 0) -> dict:
    """The quantities of :func:`ridge_sd_risk` measured on one finite sample, with the
    package's kernel-ridge rounds (:class:`KernelRidgeSD` on G = X X^T).

    Draws p = round(gamma n) features: X with i.i.d. N(0, 1) entries (gaussian) or
    sqrt(n) times orthonormal columns (orthogonal, p <= n), beta* uniform on the sphere of
    radius sqrt(r2), noise N(0, sigma2). The weights of round r are the outputs of
    :meth:`KernelRidgeSD.predict` at the unit vectors e_j (kernel rows X^T), so every risk is
    ||beta - beta*||^2 exactly for this sample.

    Returns:
      dict with teacher, student, cross (as in :class:`RidgeSDRisk`), mixed (the risk of round
      1 with teacher weight ``xi``), and xi_star, gain of this sample's quadratic.
    """
    g = _check_design(design, gamma)
    n = as_int(n, "n", lo=2, hi=100_000)
    p = max(1, int(round(g * n)))
    if design == "orthogonal" and p > n:
        raise ValueError(f"the orthogonal design needs p <= n, got p = {p}, n = {n}")
    rng = np.random.default_rng(seed)
    if design == "gaussian":
        X = rng.standard_normal((n, p))
    else:
        Q, _ = np.linalg.qr(rng.standard_normal((n, p)))
        X = math.sqrt(n) * Q
    beta = rng.standard_normal(p)
    beta *= math.sqrt(r2) / np.linalg.norm(beta)
    y = X @ beta + math.sqrt(sigma2) * rng.standard_normal(n)
    plain = KernelRidgeSD(X @ X.T, lam, alpha=0.0)
    teacher, pure = plain.predict(X.T, y, [0, 1]) - beta
    mixed = plain.with_label_weight(1.0 - xi).predict(X.T, y, [1])[0] - beta
    rt, rs, cr = float(teacher @ teacher), float(pure @ pure), float(teacher @ pure)
    return {"teacher": rt, "student": rs, "cross": cr, "mixed": float(mixed @ mixed),
            "xi_star": (rt - cr) / (rt - 2 * cr + rs),
            "gain": (rt - cr) ** 2 / (rt - 2 * cr + rs), "p": p}


RIDGE_SD_QUANTITIES = ("teacher", "student", "cross", "mixed", "xi_star", "gain")
"""What :func:`ridge_sd_agreement` compares (``mixed``: the risk at the closed form's xi*,
against R_T - gain)."""


def ridge_sd_agreement(design: str, n: int, gamma: float, lam: float, seeds, *,
                       r2: float = 1.0, sigma2: float = 1.0) -> dict:
    """Closed form against finite samples: :func:`ridge_sd_simulate` over ``seeds`` (the
    mixed student trained with the closed form's xi*) and :func:`ridge_sd_risk`.

    Returns:
      dict with "theory" (the :class:`RidgeSDRisk`), and per quantity of
      :data:`RIDGE_SD_QUANTITIES` the seed "mean", its standard error "se" (seed standard
      deviation / sqrt(#seeds)) and "z" = (mean - closed form) / se.
    """
    from sdtheory._blas import one_blas_thread

    th = ridge_sd_risk(lam, gamma, r2=r2, sigma2=sigma2, design=design)
    # one BLAS thread: eigh's last digits do not depend on the thread count, and it is
    # faster when other processes share the cores (sdtheory._blas)
    with one_blas_thread():
        runs = [ridge_sd_simulate(design, n, gamma, lam, r2=r2, sigma2=sigma2,
                                  xi=th.xi_star, seed=int(s)) for s in seeds]
    if len(runs) < 2:
        raise ValueError("the seed spread needs at least 2 seeds")
    out: dict = {"theory": th, "mean": {}, "se": {}, "z": {}}
    for k in RIDGE_SD_QUANTITIES:
        v = np.array([r[k] for r in runs])
        ref = th.teacher - th.gain if k == "mixed" else getattr(th, k)
        out["mean"][k] = float(v.mean())
        out["se"][k] = float(v.std(ddof=1) / math.sqrt(v.size))
        out["z"][k] = (out["mean"][k] - ref) / out["se"][k]
    return out
