"""Sweeps: grids of cells (:mod:`~sdtheory.jobs.sweep.grid`), batched computation
(:mod:`~sdtheory.jobs.sweep.engine`) and results (:mod:`~sdtheory.jobs.sweep.result`; their
CSV files: :func:`sdtheory.results.write_phase_csv`); the package's names are those of the
submodules' ``__all__``. Plotting lives in :mod:`sdtheory.plots`."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__)
