"""Phase-diagram results files: CSV with a JSON header line (config and version)."""

from __future__ import annotations

import json

import numpy as np

from sdtheory._io import atomic_write
from sdtheory.jobs.sweep.grid import INT_PARAMS, Axis
from sdtheory.jobs.sweep.result import PhaseResult
from sdtheory.results import bound_met, round_sig

__all__ = ["write_csv", "read_csv"]

_HEADER = "# sdtheory phase "
_INT_COLUMNS = ("r_star", "r_star_closed_form", "fragile")


def _fmt(name: str, v: float, digits: int | None = None, bound: float | None = None) -> str:
    if not np.isfinite(v):
        return "" if np.isnan(v) else repr(float(v))
    if name in _INT_COLUMNS or name in INT_PARAMS:
        return str(int(v))
    if bound is not None:
        return repr(bound_met(float(v), bound, digits or 2))
    return repr(float(v) if digits is None else round_sig(v, digits))


def write_csv(result: PhaseResult, path, *, digits: dict[str, int] | None = None,
              bounds: dict[str, float] | None = None) -> None:
    """Write a phase diagram as CSV (atomically: temporary file, then rename).

    The first line is ``# sdtheory phase {"version": ..., "config": {...}}`` (JSON); then a
    header row: the x parameter, the y parameter (named as the parameters, e.g. ``eta``,
    ``lam``), the quantity, then the other columns of ``result.values``. One row per cell,
    x varying fastest; undefined values (NaN) are empty fields.

    Args:
      result: the phase diagram.
      path: the CSV file.
      digits: significant digits per value column (:func:`sdtheory.results.round_sig`), ``"*"``
        for the columns not named; the header line then carries them as ``"precision"``.
        Integer columns (r*) and the parameter columns (the axis values) are written exactly.
        None (default): every float exactly (``repr``), so that :func:`read_csv` gives the
        same numbers back.
      bounds: columns of round-off quantities (certificates) written as the bound each value
        met (:func:`sdtheory.results.bound_met`), the same on every CPU; the header line carries
        them as ``"bound_met"``.
    """
    meta = {"version": result.version, "config": result.config}
    names = list(result.values)
    col_digits = {k: None for k in names}
    if digits is not None:
        col_digits = {k: digits.get(k, digits.get("*")) for k in names}
        meta["precision"] = {
            "significant_digits": {k: d for k, d in col_digits.items()
                                   if d is not None and k not in _INT_COLUMNS},
            "exact": [result.x.name, result.y.name] + [k for k in names if k in _INT_COLUMNS]}
    bounds = {k: v for k, v in (bounds or {}).items() if k in names}
    if bounds:
        meta.setdefault("precision", {})["bound_met"] = bounds
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


def read_csv(path) -> PhaseResult:
    """Read a CSV written by :func:`write_csv` back into a :class:`PhaseResult`."""
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


