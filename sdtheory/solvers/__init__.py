"""Solvers of one training: exact (the Newton core; one solver per structure of the Gram
matrix, picked by :class:`~sdtheory.solvers.exact.ExactSolver`), linearised (the averaging
operator), gradient-trained (optax). All share :class:`~sdtheory.solvers.base.Solver`:
keyword-only ``gram=``, ``labels=``, ``lam=`` and batch-native ``fit_batch``."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "BatchFit": "base", "Fit": "base", "NewtonInfo": "base", "TrainInfo": "base",
    "SolverError": "base", "one_hot": "base",
    "ExactSolver": "exact", "GroupSolver": "group_solver", "DenseSolver": "dense_solver",
    "FeatureSolver": "feature_solver", "leading_spectrum": "spectrum",
    "feature_spectrum": "spectrum",
    "AveragingOperator": "linear", "LinearSolver": "linear",
    "CONVERGED": "newton", "ROUNDOFF": "newton", "FAILED": "newton", "NewtonResult": "newton",
    "certificate": "newton", "newton": "newton", "DEFAULT_TOL": "newton",
    "ACCEPT_FACTOR": "newton",
    "TrainedSolver": "trained", "feature_residual": "trained", "smoothness_bound": "trained",
    "softmax_objective": "trained", "train_softmax": "trained",
})
