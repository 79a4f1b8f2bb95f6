"""sdtheory: a closed-form simulator of self-distillation on fixed features.

Theory: Jeong & Chung, arXiv 2402.10482 (ICLR 2025); the derivations the code implements are in
docs/theory.md. float64 is needed by the theory code and is switched on explicitly with
:func:`enable_x64` or :func:`x64` (never as an import side effect).

The main names of the public API, in the order of the data flow (a selection: each is listed
in the ``__all__`` of the module named in ``_NAMES``, where the rest of that module's names
are; names are imported on first use, so that light modules such as :mod:`sdtheory.plots` do
not load JAX):

* models (:mod:`sdtheory.models`): block Gram models, dense Gram matrices, features;
* noise (:mod:`sdtheory.noise`): transition matrices, corruption, Delta;
* solvers (:mod:`sdtheory.solvers`): exact (the one Newton core), linearised, trained;
* rounds (:mod:`sdtheory.distill`): self-distillation and the PLL student;
* metrics (:mod:`sdtheory.metrics`), theory (:mod:`sdtheory.theory`), population accuracy
  (:mod:`sdtheory.population`);
* jobs: :func:`simulate`, :func:`sweep` (phase diagrams), :mod:`sdtheory.jobs.verify`.
"""

from sdtheory._lazy import attach

__version__ = "0.2.0"

_NAMES = {
    # float64
    "enable_x64": "_x64", "x64": "_x64", "x64_enabled": "_x64", "require_x64": "_x64",
    # modules
    "models": "models", "noise": "noise", "metrics": "metrics", "theory": "theory",
    "solvers": "solvers", "distill": "distill", "population": "population",
    "jobs": "jobs", "sweep": "jobs.sweep", "verify": "jobs.verify", "plots": "plots",
    # models
    "BlockModel": "models", "two_level": "models", "three_level": "models",
    "Features": "models", "feature_factor": "models", "gmm_means": "models",
    "gmm_features": "models", "gram_from_features": "models", "jitter": "models",
    "min_eigenvalue": "models", "nearest_psd": "models",
    # noise
    "Corruption": "noise", "transition_matrix": "noise", "exact_counts": "noise",
    "corrupt_exact": "noise", "corrupt_sampled": "noise", "corruption_from_counts": "noise",
    "delta": "noise", "is_balanced": "noise", "corruption_from_labels": "noise",
    # solvers
    "ExactSolver": "solvers", "LinearSolver": "solvers", "TrainedSolver": "solvers",
    "AveragingOperator": "solvers", "Fit": "solvers", "SolverError": "solvers",
    "train_softmax": "solvers",
    # rounds
    "self_distill": "distill", "run_rounds": "distill", "pll_targets": "distill",
    "SDResult": "distill",
    # theory
    "averaging_eigenvalues": "theory", "r_star_closed": "theory", "r_star_theory": "theory",
    "eta_boundary": "theory", "decompose": "theory", "pll_conditions": "theory",
    # population accuracy
    "population_accuracy": "population", "population_by_round": "population",
    # jobs
    "ProblemConfig": "problem", "build_problem": "problem", "SimConfig": "jobs.simulate",
    "simulate": "jobs.simulate", "Axis": "jobs.sweep", "PhaseResult": "jobs.sweep",
    # the explorer (needs the explore extra; sd.explore() shows it in a notebook)
    "explore": "explore",
}

__getattr__, __dir__, _public = attach(__name__, _NAMES, functions=("simulate", "explore"))
__all__ = ["__version__"] + _public
