"""What goes into results files, once: the rounding policy of every float by kind, the
``precision`` entry that states it, the JSON results writer, and the CSV files of the phase
diagrams and of the probe (writing and reading).

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

__all__ = ["CERT_BOUND", "KIND_OF_KEY", "MARGIN_CAP", "PRECISION", "PROBE_CSV_COLUMNS",
           "bound_met", "precision_doc", "probe_csv_text", "read_phase_csv", "read_probe_csv",
           "round_sig", "rounded", "write_phase_csv", "write_results"]

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
    # seed means of finite-size kernel-ridge rounds (ridge_sd_proportional): linear algebra
    # whose last digits follow the CPU's BLAS
    "samples": "computed",
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


# --------------------------------------------------------------------------------------------
# Phase-diagram CSV: a JSON header line (config, version, precision), then one row per cell
# --------------------------------------------------------------------------------------------

_HEADER = "# sdtheory phase "
_INT_COLUMNS = ("r_star", "r_star_closed_form", "fragile")
_INT_PARAMS = ("n", "K")     # the integer axes (sdtheory.jobs.sweep.grid.INT_PARAMS)


def _fmt(name: str, v: float, digits: int | None = None, bound: float | None = None) -> str:
    if not np.isfinite(v):
        return "" if np.isnan(v) else repr(float(v))
    if name in _INT_COLUMNS or name in _INT_PARAMS:
        return str(int(v))
    if bound is not None:
        return repr(bound_met(float(v), bound, digits))
    return repr(float(v) if digits is None else round_sig(v, digits))


def write_phase_csv(result, path, *, rounded: bool = False) -> None:
    """Write a phase diagram as CSV (atomically: temporary file, then rename).

    The first line is ``# sdtheory phase {"version": ..., "config": {...}}`` (JSON); then a
    header row: the x parameter, the y parameter (named as the parameters, e.g. ``eta``,
    ``lam``), the quantity, then the other columns of ``result.values``. One row per cell,
    x varying fastest; undefined values (NaN) are empty fields.

    Args:
      result: the phase diagram.
      path: the CSV file.
      rounded: write each value column to the precision of its kind (:data:`KIND_OF_KEY`:
        the certificate as the bound it met, :func:`bound_met`; every other float to
        :data:`PRECISION` ``["value"]`` digits), so that the file is the same on every CPU;
        the header line then carries the policy as ``"precision"``. Integer columns (r*)
        and the parameter columns (the axis values) are written exactly. False (default):
        every float exactly (``repr``), so that :func:`read_phase_csv` gives the same
        numbers back.
    """
    meta = {"version": result.version, "config": result.config}
    names = list(result.values)
    kinds = {k: KIND_OF_KEY.get(k, "value") for k in names}
    col_digits = {k: PRECISION[kinds[k]] if rounded else None for k in names}
    bounds = {k: CERT_BOUND for k in names if rounded and kinds[k] == "certificate"}
    if rounded:
        meta["precision"] = {
            "significant_digits": {k: d for k, d in col_digits.items()
                                   if k not in _INT_COLUMNS},
            "exact": [result.x.name, result.y.name] + [k for k in names if k in _INT_COLUMNS]}
        if bounds:
            meta["precision"]["bound_met"] = bounds
    X, Y = np.meshgrid(result.x_values, result.y_values)
    lines = [_HEADER + json.dumps(meta, sort_keys=True),
             ",".join([result.x.name, result.y.name] + names)]
    flat = {k: v.ravel() for k, v in result.values.items()}
    xs, ys = X.ravel(), Y.ravel()
    for i in range(xs.size):
        lines.append(",".join([_fmt(result.x.name, xs[i]), _fmt(result.y.name, ys[i])]
                              + [_fmt(k, flat[k][i], col_digits[k], bounds.get(k))
                                 for k in names]))

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    atomic_write(path, write)


def read_phase_csv(path):
    """Read a CSV written by :func:`write_phase_csv` back into a
    :class:`~sdtheory.jobs.sweep.result.PhaseResult`."""
    from sdtheory.jobs.sweep.grid import Axis
    from sdtheory.jobs.sweep.result import PhaseResult

    with open(path) as fh:
        first = fh.readline()
        if not first.startswith(_HEADER):
            raise ValueError(f"{path}: not an sdtheory phase CSV (first line must start with "
                             f"{_HEADER.strip()!r})")
        meta = json.loads(first[len(_HEADER):])
        header = fh.readline().strip().split(",")
        rows = [ln.rstrip("\n").split(",") for ln in fh if ln.strip()]
    cfg = meta["config"]
    x, y = Axis.parse(cfg["x"]), Axis.parse(cfg["y"])
    if header[:2] != [x.name, y.name]:
        raise ValueError(f"{path}: columns {header[:2]} do not match the axes {x.name}, {y.name}")
    if len(rows) != x.count * y.count:
        raise ValueError(f"{path}: {len(rows)} rows, expected {x.count} x {y.count}")
    data = np.array([[float(v) if v != "" else np.nan for v in row] for row in rows])
    X, Y = np.meshgrid(x.values, y.values)
    if not (np.allclose(data[:, 0], X.ravel(), rtol=1e-12, atol=0)
            and np.allclose(data[:, 1], Y.ravel(), rtol=1e-12, atol=0)):
        raise ValueError(f"{path}: parameter columns do not match the axes in the header")
    values = {name: data[:, 2 + i].reshape(y.count, x.count)
              for i, name in enumerate(header[2:])}
    return PhaseResult(x=x, y=y, quantity=cfg["quantity"], solver=cfg["solver"],
                       max_rounds=int(cfg["max_rounds"]), values=values, config=cfg,
                       version=meta["version"])


# --------------------------------------------------------------------------------------------
# The probe's CSV: two comment lines (version, config), a header, one row per training
# --------------------------------------------------------------------------------------------

PROBE_CSV_COLUMNS = ("noise", "eta", "seed", "realised_rate", "delta", "round", "acc_given",
               "acc_true", "test_acc", "certificate")
"""Columns of the results CSV (a contract: other tools parse ``test_acc``)."""


def probe_csv_text(doc: dict) -> str:
    """The results CSV: two comment lines (version, config as JSON), a header, one row per
    training."""
    import json

    lines = [f"# sdtheory probe {doc['version']}",
             f"# config: {json.dumps(doc['config'], sort_keys=True)}",
             ",".join(PROBE_CSV_COLUMNS)]
    for r in doc["rows"]:
        lines.append(",".join("" if r[c] is None else str(r[c]) for c in PROBE_CSV_COLUMNS))
    return "\n".join(lines) + "\n"


def read_probe_csv(path) -> tuple[dict, list[dict]]:
    """Read a results CSV back: (config, rows) with numbers as floats/ints."""
    import json

    with open(path) as fh:
        lines = fh.read().splitlines()
    config = json.loads(lines[1].split(":", 1)[1])
    head = lines[2].split(",")
    rows = []
    for line in lines[3:]:
        vals = dict(zip(head, line.split(",")))
        for k in ("eta", "realised_rate", "delta", "acc_given", "acc_true", "test_acc"):
            vals[k] = float(vals[k])
        vals["seed"] = int(vals["seed"])
        vals["certificate"] = float(vals["certificate"]) if vals["certificate"] else None
        rows.append(vals)
    return config, rows
