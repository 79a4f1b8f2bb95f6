"""The result of a phase diagram (pure numpy: plotting and files need no solver)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sdtheory.jobs.sweep.grid import Axis
from sdtheory.results import CERT_BOUND

__all__ = ["PhaseResult"]


@dataclass(frozen=True, eq=False)
class PhaseResult:
    """A phase diagram: values on the grid y x x.

    Attributes:
      x, y: the swept axes.
      quantity: one of :data:`~sdtheory.jobs.sweep.engine.QUANTITIES`; ``values[quantity]`` is the
        diagram.
      solver: "exact" or "linear".
      max_rounds: R (rounds 0..R).
      values: column name -> (len(y), len(x)) float64 array, NaN where undefined. Always the
        quantity, ``r_star_closed_form`` and ``fragile`` (1 where the value would change were
        the tie tolerance ten times larger or smaller; absent from files written before it
        existed); ``pll_gain`` adds ``pll_acc`` and ``sd_best_acc``; the exact solver adds
        ``certificate`` (largest certificate of the cell's solves).
      config: the full configuration: base model/noise parameters (swept ones removed), the
        axes as ``NAME:LO:HI:COUNT[:log]``, quantity, solver, max_rounds.
      version: package version that computed it.
      seconds: wall time of the computation.
    """

    x: Axis
    y: Axis
    quantity: str
    solver: str
    max_rounds: int
    values: dict
    config: dict
    version: str
    seconds: float = field(default=0.0)

    @property
    def x_values(self) -> np.ndarray:
        return self.x.values

    @property
    def y_values(self) -> np.ndarray:
        return self.y.values

    @property
    def data(self) -> np.ndarray:
        """The diagram of ``quantity``: (len(y), len(x)), NaN where undefined."""
        return self.values[self.quantity]

    @property
    def fragile(self) -> np.ndarray:
        """(len(y), len(x)) bool: cells whose value changes were the tie tolerance ten times
        larger or smaller (all False for a file without the ``fragile`` column)."""
        col = self.values.get("fragile")
        if col is None:
            return np.zeros((self.y.count, self.x.count), dtype=bool)
        return np.nan_to_num(col, nan=0.0) > 0

    @property
    def failed(self) -> np.ndarray:
        """(len(y), len(x)) bool: cells whose exact solve did not certify (never for linear)."""
        cert = self.values.get("certificate")
        if cert is None:
            return np.zeros((self.y.count, self.x.count), dtype=bool)
        return ~(cert <= CERT_BOUND)


