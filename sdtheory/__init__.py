"""sdtheory: a closed-form simulator of self-distillation on fixed features.

Theory: Jeong & Chung, arXiv 2402.10482 (ICLR 2025); formulas in theory.md. float64 is needed
by the theory code and is switched on explicitly with :func:`enable_x64` or :func:`x64`.
"""

from sdtheory._x64 import enable_x64, require_x64, x64, x64_enabled
from sdtheory.gram import (
    BlockModel,
    Eigen,
    gmm_features,
    gmm_means,
    gram_from_features,
    jitter,
    min_eigenvalue,
    nearest_psd,
    three_level,
    two_level,
)
from sdtheory.noise import (
    Corruption,
    check_superclasses_for_noise,
    corrupt_exact,
    corrupt_sampled,
    corruption_from_counts,
    custom_transition,
    delta,
    exact_counts,
    is_balanced,
    superclasses_from_features,
    transition_matrix,
)

from sdtheory.solve import (  # noqa: E402  (after the models, as in the data flow)
    AveragingOperator,
    ExactSolver,
    Fit,
    GroupSolver,
    LinearSolver,
    SolverError,
)
from sdtheory.distill import SDResult, pll_targets, self_distill  # noqa: E402
from sdtheory.simulate import SimConfig, simulate  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "enable_x64",
    "x64",
    "x64_enabled",
    "require_x64",
    "BlockModel",
    "two_level",
    "three_level",
    "Eigen",
    "jitter",
    "min_eigenvalue",
    "nearest_psd",
    "gmm_means",
    "gmm_features",
    "gram_from_features",
    "transition_matrix",
    "custom_transition",
    "Corruption",
    "exact_counts",
    "corrupt_exact",
    "corrupt_sampled",
    "corruption_from_counts",
    "delta",
    "is_balanced",
    "superclasses_from_features",
    "check_superclasses_for_noise",
    "Fit",
    "SolverError",
    "ExactSolver",
    "GroupSolver",
    "LinearSolver",
    "AveragingOperator",
    "self_distill",
    "pll_targets",
    "SDResult",
    "SimConfig",
    "simulate",
]
