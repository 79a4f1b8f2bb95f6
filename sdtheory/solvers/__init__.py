"""Solvers of one training: exact (the Newton core), linearised (the averaging operator),
gradient-trained (optax). All share :class:`~sdtheory.solvers.base.Solver`: keyword-only
``gram=``, ``labels=``, ``lam=`` and batch-native ``fit_batch``."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "BatchFit": "base", "Fit": "base", "NewtonInfo": "base", "TrainInfo": "base",
    "SolverError": "base", "one_hot": "base",
    "ExactSolver": "exact", "leading_spectrum": "exact",
    "AveragingOperator": "linear", "LinearSolver": "linear",
    "CONVERGED": "newton", "ROUNDOFF": "newton", "FAILED": "newton", "NewtonResult": "newton",
    "certificate": "newton", "newton": "newton", "DEFAULT_TOL": "newton",
    "ACCEPT_FACTOR": "newton",
    "TrainedSolver": "trained", "feature_residual": "trained", "smoothness_bound": "trained",
    "softmax_objective": "trained", "train_softmax": "trained",
})
