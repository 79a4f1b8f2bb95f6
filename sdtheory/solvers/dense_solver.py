"""The exact solver of a full N x N Gram matrix (docs/theory.md section 2.4): units are the
samples, each Newton system solved by GMRES with a preconditioner from G's leading eigenpairs
(:class:`~sdtheory.solvers.problems.DenseProblem`,
:func:`~sdtheory.solvers.spectrum.leading_spectrum`)."""

from __future__ import annotations

import numpy as np

from sdtheory._validate import check_lam
from sdtheory._x64 import require_x64
from sdtheory.models import square_matrix
from sdtheory.solvers.newton import DEFAULT_TOL
from sdtheory.solvers.newton_solver import NewtonSolver, sample_units
from sdtheory.solvers.problems import SINGLE_MIN_SIZE, padded_size
from sdtheory.solvers.spectrum import leading_spectrum

__all__ = ["DenseSolver"]


class DenseSolver(NewtonSolver):
    """Exact outputs of one training on an (N, N) symmetric PSD Gram matrix.

    Args:
      gram: the Gram matrix G.
      labels: a :class:`~sdtheory.noise.Corruption` (true and given label per sample, in the
        order of G).
      lam: ridge parameter lambda > 0.
      tol: certificate to reach.
      max_iter: Newton steps of the first attempt.

    Attributes:
      G: the Gram matrix.
      spectrum: the preconditioner's spectral data
        (:func:`~sdtheory.solvers.spectrum.leading_spectrum`).

    The unknowns passed between rounds (``BatchFit.x``) are the logits of the padded samples
    (1, Np, K), Np = :func:`~sdtheory.solvers.problems.padded_size` (N).
    """

    kind = "dense"

    def __init__(self, *, gram, labels, lam, tol: float = DEFAULT_TOL, max_iter: int = 60):
        import jax

        from sdtheory.solvers.problems import DenseProblem

        require_x64("DenseSolver")
        lam = check_lam(lam)
        self.tol, self.max_iter = float(tol), int(max_iter)
        G = square_matrix(gram, symmetric=True)
        N = G.shape[0]
        self.K, self.true, self.given = sample_units(labels, N, "a dense Gram matrix needs",
                                                     f"G is {N} x {N}")
        self.weight, self.counts, self.lam_b = np.ones((1, N)), labels.counts, np.array([lam])
        s = 1.0 / (N * lam)
        self.spectrum = sp = leading_spectrum(G, s, self.K)
        Np = padded_size(N)
        Gp = np.zeros((Np, Np))
        Gp[:N, :N] = G
        # Gp is handed to JAX only when complete and never written afterwards: a buffer given
        # to device_put must not change later, whatever the copy semantics (with a
        # factorisation run in it after device_put, the solved matrix once differed from G by
        # the Cholesky shift on its diagonal).
        put = jax.device_put      # a transfer; jnp.asarray would also run a conversion program
        G_device = put(Gp)
        Vp = np.zeros((Np, sp["k"]))
        Vp[:N] = sp["V"]
        G32 = put(Gp.astype(np.float32)) if Np >= SINGLE_MIN_SIZE else None
        self._problem = DenseProblem(s=put(s), G=G_device, V=put(Vp), mu=put(sp["mu"]),
                                     mu_rest=put(sp["mu_rest"]), G32=G32)
        self._sel = np.arange(N)
        self.G = G

    def _layout(self, T, fill=None):
        """Unit rows -> the padded samples, (b, Np, K)."""
        full = np.full((T.shape[0], self._problem.G.shape[0], self.K),
                       1.0 / self.K if fill is None else fill)
        full[:, :T.shape[1]] = T
        return full
