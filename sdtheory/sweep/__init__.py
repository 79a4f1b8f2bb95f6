"""Sweeps: grids of cells (:mod:`~sdtheory.sweep.grid`), batched computation
(:mod:`~sdtheory.sweep.engine`), results (:mod:`~sdtheory.sweep.result`) and their CSV files
(:mod:`~sdtheory.sweep.io`). Plotting lives in :mod:`sdtheory.plots`."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "PARAMS": "grid", "Axis": "grid", "Cells": "grid", "Plan": "grid", "plan": "grid",
    "QUANTITIES": "engine", "SOLVERS": "engine", "phase_diagram": "engine",
    "run_plan": "engine",
    "CERT_TOL": "result", "PhaseResult": "result",
    "write_csv": "io", "read_csv": "io",
})
