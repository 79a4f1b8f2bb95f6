"""What goes into results files, once: the rounding policy of every float by kind, the
``precision`` entry that states it, and the JSON results writer.

Committed results must be the same bytes on every CPU, so a number goes into a file only to
the digits that do not depend on the machine's floating point:

* solver certificates and residuals are round-off: written as the bound each met
  (:data:`CERT_BOUND`), or, above it, to 2 significant digits;
* decision margins (a gap over its tie tolerance, itself a multiple of a certificate) are
  written to 3 significant digits up to :data:`MARGIN_CAP`, and as the cap beyond it;
* numbers computed by an iterative solver or an eigensolver (outputs, measured shrink, output
  gaps, smallest eigenvalues of G, optima of L-BFGS-B): 6 significant digits;
* every other float (accuracies, closed forms, eigenvalues, noise rates, Delta): 10;
* ints and the grid coordinates (exact decimals: :func:`sdtheory.jobs.sweep.grid.decimal_grid`) are
  exact; a configuration is written as given.

Rounding is :func:`round_sig` (correctly rounded decimal, the same on every platform). Files are
written atomically (:mod:`sdtheory._io`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sdtheory._io import atomic_write, jsonable
from sdtheory.solvers.newton import ACCEPT_FACTOR, DEFAULT_TOL

__all__ = ["CERT_BOUND", "KIND_OF_KEY", "MARGIN_CAP", "PRECISION", "bound_met", "precision_doc",
           "round_sig", "rounded", "write_results"]

CERT_BOUND = ACCEPT_FACTOR * DEFAULT_TOL
"""Largest certificate the exact solvers accept (the Newton core's acceptance bound): the bound
written in place of every certificate that met it."""

MARGIN_CAP = 1000.0
"""Decision margins are written up to this value, and as this value beyond it (a margin that
large is no knife edge, and its digits follow the round-off of its tie tolerance)."""

PRECISION = {"certificate": 2, "margin": 3, "computed": 6, "value": 10}
"""Significant digits of the floats in results files, by kind (module docstring)."""

KIND_OF_KEY = {
    "residual": "certificate", "certificate": "certificate",
    "decision_margin": "margin",
    "outputs": "computed", "exact_measured": "computed", "exact_measured_jittered": "computed",
    "max_abs_output_gap": "computed", "min_eigenvalue": "computed",
    "min_eigenvalue_requested_eps": "computed",
    # optima of L-BFGS-B (optimize_eta), stopped at a projected gradient of 1e-9
    "optima": "computed",
}
"""The kind of a results file's entry by its key; it applies to everything below the key."""


def round_sig(x, digits: int):
    """``x`` rounded to ``digits`` significant digits (the one rounding rule of results files).

    The decimal rounding of Python's float formatting (correctly rounded, the same on every
    platform): ``round_sig(0.006000000000000005, 10) == 0.006``,
    ``round_sig(5.0906e-12, 2) == 5.1e-12``. Floats and numpy floats give a float; arrays and
    lists give a list of the same nesting; ints, bools, None, nan and inf pass through.

    Args:
      x: a number, or a (nested) list / tuple / array of numbers.
      digits: significant digits, >= 1.
    """
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [round_sig(v, digits) for v in x]
    if isinstance(x, (bool, int, np.integer)) or x is None:
        return x
    v = float(x)
    if not math.isfinite(v) or v == 0.0:
        return v
    return float(f"{v:.{digits - 1}e}")


def bound_met(x, bound: float, digits: int = 2):
    """A round-off quantity (a solver certificate) as it goes into results files: ``bound``
    where ``x`` met it (x <= bound), so that the file is the same on every CPU; else ``x`` to
    ``digits`` significant digits. None and nan pass through."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return x
    return float(bound) if x <= bound else round_sig(x, digits)


def _one(v: float, kind: str) -> float:
    if kind == "certificate":
        return bound_met(v, CERT_BOUND, PRECISION[kind])
    if kind == "margin" and v > MARGIN_CAP:
        return MARGIN_CAP
    return round_sig(v, PRECISION[kind])


def rounded(obj, kind: str = "value"):
    """``obj`` (JSON-ready) with every float written to its kind's precision; a key of
    :data:`KIND_OF_KEY` sets the kind of everything below it."""
    if isinstance(obj, dict):
        return {k: rounded(v, KIND_OF_KEY.get(k, kind)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rounded(v, kind) for v in obj]
    if isinstance(obj, float):
        return _one(obj, kind)
    return obj


def precision_doc() -> dict:
    """The ``precision`` entry of every results file."""
    keys = {kind: sorted(k for k, v in KIND_OF_KEY.items() if v == kind)
            for kind in ("certificate", "margin", "computed")}
    return {
        "rounding": "significant digits (sdtheory.results.round_sig); ints are exact; the "
                    "config is as given",
        "certificate": {"bound_met": CERT_BOUND, "keys": keys["certificate"],
                        "meaning": "the bound each certificate met (the same on every CPU); "
                                   f"a value above it, to {PRECISION['certificate']} digits"},
        "margin": {"digits": PRECISION["margin"], "cap": MARGIN_CAP, "keys": keys["margin"]},
        "computed": {"digits": PRECISION["computed"], "keys": keys["computed"]},
        "value": {"digits": PRECISION["value"],
                  "keys": "every other float (accuracies, closed forms, eigenvalues mu and a, "
                          "noise rates, Delta)"},
    }


def write_results(path, figure: str, cfg: dict, data: dict) -> Path:
    """Write a JSON results file: figure name, package version, precision, full config, then
    ``data`` with its floats rounded (:func:`rounded`)."""
    import sdtheory

    doc = {"figure": figure, "version": sdtheory.__version__, "precision": precision_doc(),
           "config": jsonable(cfg), **rounded(jsonable(data))}

    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")

    atomic_write(path, write)
    return Path(path)
