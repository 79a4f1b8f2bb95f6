"""The harness of ``sdtheory verify``: a registry of checks, a tally per check, the table.

Each check turns one statement of docs/theory.md into an experiment over a grid or a seeded
random sample of parameters and reports

* the cases tried and passed,
* the worst margin: a signed number, > 0 where a case passed with room (its unit is given in
  the check's statement: a tolerance minus an error, a distance in rounds, an accuracy gap),
* the first counter-example (its parameters and numbers) where a case failed.

A failing check is a finding about the theory (or the code), not something to hide: the table
keeps it and the exit code is 1.

Adding a check: decorate a function of one :class:`Tally` argument in a module listed in
:data:`CHECK_MODULES`,

    >>> @check("my_statement", "what is claimed, and the margin's unit")   # doctest: +SKIP
    ... def _my_statement(t):
    ...     for params in grid(t.quick):
    ...         err = ...
    ...         t.case(params, margin=1e-12 - err, err=err)

All grids are fixed or drawn from ``numpy.random.default_rng`` with fixed seeds: the same
command gives the same table.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdtheory._io import jsonable
from sdtheory.executors import task

__all__ = [
    "CHECK_MODULES",
    "Check",
    "CheckResult",
    "Tally",
    "check",
    "checks",
    "run",
    "format_table",
    "results_to_json",
]

log = logging.getLogger(__name__)

CHECK_MODULES: tuple[str, ...] = (
    "sdtheory.jobs.verify.checks_linear",
    "sdtheory.jobs.verify.checks_rstar",
    "sdtheory.jobs.verify.checks_pll",
    "sdtheory.jobs.verify.checks_trained",
    "sdtheory.jobs.verify.checks_peers",
)
"""Modules imported by :func:`checks` so that their ``@check`` functions join the registry, in
the order of the table."""


@dataclass(frozen=True)
class Check:
    """One registered statement: ``fn(tally)`` runs its cases."""

    name: str
    statement: str
    fn: Callable[[Tally], None]


_REGISTRY: dict[str, Check] = {}


def check(name: str, statement: str):
    """Decorator registering ``fn(tally)`` as the check ``name`` with its ``statement``.

    Raises:
      ValueError: if ``name`` is already registered or not a plain identifier.
    """
    if not name.replace("_", "").isalnum():
        raise ValueError(f"check name must be letters, digits and '_', got {name!r}")

    def register(fn):
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a check named {name!r} is already registered")
        _REGISTRY[name] = Check(name=name, statement=statement, fn=fn)
        return fn

    return register


def checks() -> dict[str, Check]:
    """All registered checks (after importing :data:`CHECK_MODULES`), in order."""
    for mod in CHECK_MODULES:
        importlib.import_module(mod)
    return dict(_REGISTRY)


class Tally:
    """What a check reports, case by case.

    Attributes:
      quick: run the small grid (``sdtheory verify --quick``).
    """

    def __init__(self, quick: bool):
        self.quick = bool(quick)
        self.tried = 0
        self.passed = 0
        self.worst_margin: float | None = None
        self.counterexample: dict | None = None
        self.notes: list[str] = []

    def case(self, params: dict, margin: float | None = None, *, passed: bool | None = None,
             **numbers) -> bool:
        """Record one case.

        Args:
          params: the parameters of the case (shown in a counter-example).
          margin: signed margin, > 0 where the case passed with room; None if the case has no
            meaningful margin (then ``passed`` must be given).
          passed: whether the case passed; default ``margin > 0``.
          **numbers: the measured numbers, shown in a counter-example.

        Returns:
          whether the case passed.
        """
        if passed is None:
            if margin is None:
                raise ValueError("case() needs a margin or an explicit passed=")
            passed = bool(margin > 0)
        self.tried += 1
        if margin is not None:
            margin = float(margin)
            if self.worst_margin is None or margin < self.worst_margin:
                self.worst_margin = margin
        if passed:
            self.passed += 1
        elif self.counterexample is None:
            self.counterexample = {"params": dict(params), "margin": margin, **numbers}
        return bool(passed)

    def note(self, text: str) -> None:
        """A line of context printed under the check's row (observed rates, bands, ...)."""
        self.notes.append(str(text))


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check (see :class:`Tally`); ``error`` is set if the check raised."""

    name: str
    statement: str
    tried: int
    passed: int
    worst_margin: float | None
    counterexample: dict | None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Every case passed, at least one case was tried, and nothing raised."""
        return self.error is None and self.tried > 0 and self.passed == self.tried

    def to_dict(self) -> dict:
        return {"name": self.name, "statement": self.statement, "ok": self.ok,
                "tried": self.tried, "passed": self.passed,
                "worst_margin": _jsonable(self.worst_margin),
                "counterexample": _jsonable(self.counterexample), "notes": list(self.notes),
                "seconds": round(self.seconds, 3), "error": self.error}


def _run_one(chk: Check, quick: bool) -> CheckResult:
    t = Tally(quick)
    t0 = time.perf_counter()
    error = None
    try:
        chk.fn(t)
    except Exception as err:  # a crashing check is reported as a failure, never swallowed
        error = f"{type(err).__name__}: {err}"
    return CheckResult(name=chk.name, statement=chk.statement, tried=t.tried, passed=t.passed,
                       worst_margin=t.worst_margin, counterexample=t.counterexample,
                       notes=tuple(t.notes), seconds=time.perf_counter() - t0, error=error)


@task
def _run_named(name: str, quick: bool) -> CheckResult:
    """One check by name, in whichever process runs it (a task of
    :func:`sdtheory.executors.run_tasks`)."""
    return _run_one(checks()[name], quick)


def run(names=None, *, quick: bool = False, executor: str = "serial",
        workers: int | None = None, scheduler: str | None = None) -> list[CheckResult]:
    """Run the named checks (default: all), in registry order.

    Args:
      names: iterable of check names, or None for all.
      quick: small grids.
      executor, workers, scheduler: where the checks run, one task each
        (:func:`sdtheory.executors.executor`); the results do not depend on it.

    Raises:
      ValueError: for an unknown check name (listing the known ones).
    """
    from sdtheory._x64 import require_x64

    require_x64("sdtheory.jobs.verify.run")
    registry = checks()
    if names is None:
        selected = list(registry)
    else:
        names = list(names)
        unknown = [n for n in names if n not in registry]
        if unknown:
            raise ValueError(f"unknown check {unknown[0]!r}; known checks: "
                             f"{', '.join(registry)}")
        selected = [n for n in registry if n in set(names)]
    from sdtheory.executors import executor as open_executor
    from sdtheory.executors import run_tasks

    # the longest checks first, so that parallel workers finish together (order of the
    # results is the registry's whatever the order of submission)
    order = sorted(range(len(selected)), key=lambda i: -_EXPECTED_SECONDS.get(selected[i], 1.0))
    with open_executor(executor, workers=workers, scheduler=scheduler,
                       task_bytes=TASK_BYTES, what="verify") as ex:
        done = run_tasks(ex, _run_named, [(selected[i], quick) for i in order],
                         labels=[selected[i] for i in order], what="check", logger=log)
    out: list = [None] * len(selected)
    for i, res in zip(order, done):
        log.info("%s: %d/%d in %.1f s", res.name, res.passed, res.tried, res.seconds)
        out[i] = res
    return out


TASK_BYTES = 256 * 2 ** 20
"""Peak memory of the largest check above the process's own (calibrated on the verify jobs of
benchmarks/bench_memory.py)."""

_EXPECTED_SECONDS = {"takanami_optimal_error": 12.0, "r_star_closed_vs_linear": 9.0,
                     "trained_vs_closed_form": 6.0, "delta_necessary": 5.0,
                     "r_star_exact_band": 5.0, "pll_conditions": 4.0}
"""Measured seconds of the longest checks (full grids, benchmarks/README.md): the order in
which they are handed to an executor."""


def _jsonable(x):
    """numpy scalars/arrays -> Python; non-finite floats -> strings ("inf", "nan")."""
    return jsonable(x, nonfinite="str")


def fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    if isinstance(v, np.ndarray):
        return fmt(v.tolist())
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(fmt(u) for u in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt(u)}" for k, u in v.items()) + "}"
    return str(v)


def _fmt_counterexample(ce: dict) -> str:
    params = " ".join(f"{k}={fmt(v)}" for k, v in ce["params"].items())
    rest = "; ".join(f"{k}={fmt(v)}" for k, v in ce.items() if k != "params")
    return f"{params}: {rest}"


def format_table(results: list[CheckResult]) -> str:
    """The verify table: one row per check (name, tried, passed, worst margin, result,
    statement), then the counter-example, error and notes of the check, indented."""
    w = max([len("check")] + [len(r.name) for r in results])
    head = f"{'check':<{w}}  {'tried':>6}  {'passed':>6}  {'worst margin':>12}  result  statement"
    lines = [head]
    for r in results:
        wm = "-" if r.worst_margin is None else f"{r.worst_margin:.3g}"
        status = "PASS" if r.ok else "FAIL"
        lines.append(f"{r.name:<{w}}  {r.tried:>6}  {r.passed:>6}  {wm:>12}  {status:<6}  "
                     f"{r.statement}")
        pad = " " * (w + 2)
        if r.error:
            lines.append(f"{pad}error: {r.error}")
        if r.counterexample is not None:
            lines.append(f"{pad}counter-example: {_fmt_counterexample(r.counterexample)}")
        if r.tried == 0 and not r.error:
            lines.append(f"{pad}no case tried")
        for note in r.notes:
            lines.append(f"{pad}note: {note}")
    n_ok = sum(r.ok for r in results)
    lines.append(f"{n_ok}/{len(results)} checks passed")
    return "\n".join(lines)


def results_to_json(results: list[CheckResult], *, quick: bool) -> dict:
    """The JSON form of a verify run (``sdtheory verify --json`` and verify.json)."""
    from sdtheory import __version__

    return {"version": __version__, "quick": bool(quick),
            "ok": all(r.ok for r in results), "checks": [r.to_dict() for r in results]}


