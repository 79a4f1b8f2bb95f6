"""Phase diagrams: one quantity over a grid of two swept parameters.

Every cell of a :class:`~sdtheory.jobs.sweep.grid.Plan` runs rounds 0..R of self-distillation and
one of three quantities colours it:

* ``r_star``: the first round r in 0..R whose training accuracy against the true labels is
  100% (NaN if no round up to R reaches it);
* ``acc_round_R``: the training accuracy at round R;
* ``pll_gain``: the accuracy of the PLL student minus the best SD accuracy over rounds 0..R,
  pll_gain = acc(PLL) - max_{r = 0..R} acc(round r), > 0 where one PLL round beats every SD
  round up to R.

Two solvers:

* ``exact``: the group-reduced fixed point (E), every cell a problem of one batched
  :class:`~sdtheory.solvers.ExactSolver` (the Newton core, vmapped), rounds by
  :func:`sdtheory.distill.run_rounds`, each cell stopping at its first 100% round. A cell
  whose solve misses its certificate is marked failed (NaN, ``certificate`` column above
  :data:`CERT_BOUND`) rather than returned.
* ``linear``: the closed form (L) through the per-instance decomposition
  (:mod:`sdtheory.theory`), vectorised over cells.

Every result also carries the closed-form r* (column ``r_star_closed_form``) where it applies,
and a column ``fragile``: 1 where the cell's value would change were the tie tolerance ten
times larger or smaller (:mod:`sdtheory.metrics`, decision margins): for r*, a round up to r*
whose smallest margin lies within a factor 10 of the tolerance; for the accuracy at round R,
its decision margin; for the PLL gain, that of any SD round, of the PLL student or of its
top-2 targets in the teacher.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from sdtheory import theory
from sdtheory._progress import Progress
from sdtheory.distill import pll_target_margin, pll_targets, run_rounds
from sdtheory.executors import task
from sdtheory.jobs.sweep.grid import Axis, Cells, Plan, plan
from sdtheory.jobs.sweep.result import PhaseResult
from sdtheory.metrics import (
    FRAGILE_FACTOR,
    accuracy,
    correct,
    decision_margins,
    fragile,
    tie_tolerance,
)
from sdtheory.problem import ProblemConfig
from sdtheory.results import CERT_BOUND
from sdtheory.solvers import ExactSolver

__all__ = ["QUANTITIES", "SOLVERS", "check_request", "phase_diagram", "run_plan"]

log = logging.getLogger(__name__)

QUANTITIES = ("r_star", "acc_round_R", "pll_gain")
SOLVERS = ("exact", "linear")

MAX_ROUNDS = 10_000
"""Most rounds a sweep may ask for."""


def check_request(quantity: str, solver: str, max_rounds) -> int:
    """The number of rounds of a sweep of ``quantity`` by ``solver``, each checked (a
    one-line ValueError naming the bad one)."""
    from sdtheory._validate import as_int, check_choice

    check_choice(quantity, QUANTITIES, "quantity")
    check_choice(solver, SOLVERS, "solver")
    return as_int(max_rounds, "max-rounds", lo=0, hi=MAX_ROUNDS)


def _as_axis(a) -> Axis:
    return a if isinstance(a, Axis) else Axis.parse(a)


def phase_diagram(base: ProblemConfig, x, y, *, quantity: str = "r_star", solver: str = "exact",
                  max_rounds: int = 60, pll_ties: str = "split", executor: str = "serial",
                  workers: int | None = None, scheduler: str | None = None) -> PhaseResult:
    """Compute a phase diagram (see the module docstring for the quantities).

    Args:
      base: model and noise parameters of every cell (block or superclass model, no jitter);
        the swept parameters replace its fields.
      x, y: :class:`~sdtheory.jobs.sweep.grid.Axis` (or ``NAME:LO:HI:COUNT[:log]`` strings).
      quantity: "r_star", "acc_round_R" or "pll_gain".
      solver: "exact" (group-reduced fixed point, batched Newton) or "linear" (closed form).
      max_rounds: R, rounds 0..R.
      pll_ties: tie rule of the PLL student's top-2 labels (``pll_gain`` only).
      executor, workers, scheduler: where the chunks of cells run
        (:func:`sdtheory.executors.executor`; serial: one batch per K, as before).

    Returns:
      :class:`PhaseResult` with arrays of shape (len(y), len(x)).

    Raises:
      ValueError: bad parameters, naming the parameter and the first bad cell.

    Example:
      >>> import sdtheory as sd; sd.enable_x64()
      >>> res = phase_diagram(sd.ProblemConfig(K=4, n=500), "eta:0:0.7:8", "lam:1e-5:1e-3:5:log",
      ...             solver="linear")
      >>> res.data.shape
      (5, 8)
    """
    R = check_request(quantity, solver, max_rounds)
    return run_plan(plan(base, _as_axis(x), _as_axis(y)), quantity=quantity, solver=solver,
                    max_rounds=R, pll_ties=pll_ties, executor=executor, workers=workers,
                    scheduler=scheduler)


def run_plan(p: Plan, *, quantity: str, solver: str, max_rounds: int,
             pll_ties: str = "split", executor: str = "serial", workers: int | None = None,
             scheduler: str | None = None) -> PhaseResult:
    """Compute a phase diagram on a validated :class:`~sdtheory.jobs.sweep.grid.Plan`; the cells go
    to the executor in tasks of consecutive cells (:func:`_task_cells`), the same on every
    executor, so that every executor gives the same digits."""
    from sdtheory import __version__

    R = check_request(quantity, solver, max_rounds)
    ny, nx = p.shape
    parts = _tasks(p, solver)
    from sdtheory.executors import executor as open_executor
    from sdtheory.executors import memory_bytes, run_tasks

    task_bytes = max(_peak_bytes(g, solver) for g in parts)
    log.info("%d cells (K = %s), rounds 0..%d: at most %d trainings; estimated peak memory "
             "%.2f GiB", nx * ny, ", ".join(str(g.K) for g in p.groups), R,
             nx * ny * (R + 1 + (quantity == "pll_gain")),
             memory_bytes(executor, workers, task_bytes) / 2 ** 30)
    t0 = time.perf_counter()
    with open_executor(executor, workers=workers, scheduler=scheduler, task_bytes=task_bytes,
                       what=f"a phase diagram with K up to {max(g.K for g in p.groups)} "
                            "(--x, --y)") as ex:
        done = run_tasks(ex, _cells_task, [(g, solver, quantity, R, pll_ties) for g in parts],
                         labels=[f"K={g.K} cells {int(g.index[0])}..{int(g.index[-1])}"
                                 for g in parts], what="cell", logger=log,
                         sizes=[g.size for g in parts])
    cols: dict[str, np.ndarray] = {}
    for g, res in zip(parts, done):
        for name, v in res.items():
            cols.setdefault(name, np.full(nx * ny, np.nan))[g.index] = v
    values = {name: v.reshape(ny, nx) for name, v in cols.items()}
    order = [quantity] + sorted(k for k in values if k != quantity)
    seconds = time.perf_counter() - t0
    log.info("%d cells in %.1f s", nx * ny, seconds)
    return PhaseResult(x=p.x, y=p.y, quantity=quantity, solver=solver, max_rounds=R,
                       values={k: values[k] for k in order},
                       config=_config_dict(p, quantity, solver, R, pll_ties),
                       version=__version__, seconds=seconds)


def _task_cells(K: int, solver: str) -> int:
    """Cells per task of a sweep over K classes, whatever the executor.

    Exact solver: eight solver batches (:func:`~sdtheory.solvers.group_solver.batch_size`). A cell's
    last digits depend on the size of the batch it is solved in, which depends on how many
    cells of its task are still active, so this executor-independent cut makes every
    executor give the same CSV byte for byte. (Tasks of one batch made the 75 x 41 diagram of
    benchmarks/bench_phase.py slower: smaller tasks pad more; benchmarks/README.md.)
    Linear solver: four blocks of the vectorised closed form (its cells do not depend on one
    another; 1,953 tasks of 512 cells made a 1000 x 1000 diagram 14 times slower, measured:
    per-task set-up)."""
    from sdtheory.solvers.group_solver import batch_size

    return 8 * batch_size(K) if solver == "exact" else 4 * _linear_block_cells(K)


def _tasks(p: Plan, solver: str) -> list[Cells]:
    """The plan's cells cut into tasks of :func:`_task_cells` consecutive cells (the
    corruption table shared)."""
    from dataclasses import replace

    out = []
    for g in p.groups:
        size = _task_cells(g.K, solver)
        if g.index.size <= size:
            out.append(g)
            continue
        for s0 in range(0, g.index.size, size):
            sl = slice(s0, s0 + size)
            out.append(replace(g, index=g.index[sl], n=g.n[sl], lam=g.lam[sl], c=g.c[sl],
                               d=g.d[sl], e=g.e[sl], cfg=g.cfg[sl]))
    return out


@task
def _cells_task(g: Cells, solver: str, quantity: str, R: int, ties: str) -> dict:
    """One chunk of cells: the swept quantity and its companions, and the closed-form r*."""
    run = _exact_cells if solver == "exact" else _linear_cells
    res = run(g, quantity, R, ties)
    res["r_star_closed_form"] = _closed_form_column(g)
    return res


def _peak_bytes(g: Cells, solver: str) -> float:
    """Rough peak memory of one group of cells: the exact solver holds a chunk of problems
    of (K, K, K) arrays (some 24 live copies in a Newton step, with the batched K x K solves)
    plus every cell's outputs, logits and targets; the closed form works on blocks of
    ``_LINEAR_BLOCK`` floats. Measured: K = 40, 41 cells: 1.2 GB resident in all, 0.4 GB of it
    the interpreter and JAX."""
    K = g.K
    if solver == "exact":
        from sdtheory.solvers.group_solver import SMALL_BATCH, batch_size

        chunk = SMALL_BATCH if g.size <= SMALL_BATCH else batch_size(K)
        return 8.0 * K ** 3 * (24 * chunk + 6 * g.size)
    return 8.0 * 10 * _LINEAR_BLOCK


def _config_dict(p: Plan, quantity: str, solver: str, R: int, pll_ties: str) -> dict:
    d = p.base.to_dict()
    for k in ("dim", "jitter", p.x.name, p.y.name):
        d.pop(k, None)
    if p.base.counts is not None:
        d.pop("eta", None)
        d.pop("noise", None)
    if p.base.model != "superclass":
        d.pop("e", None)
        d.pop("classes_per_superclass", None)
    if not p.base.sampled:
        d.pop("seed", None)
    d.update(x=p.x.spec, y=p.y.spec, quantity=quantity, solver=solver, max_rounds=R)
    if quantity == "pll_gain":
        d["pll_ties"] = pll_ties
    return d


def _closed_form_column(g: Cells) -> np.ndarray:
    """r* by the closed form where it applies (balanced counts; three-level: flips only inside
    the true superclass), 0 without mislabelled samples, NaN elsewhere."""
    a = g.averaging()
    C = g.counts
    applies = theory.closed_form_applies(C, g.superclass_of)
    dlt = theory.delta(C)
    noiseless = ~np.any(C[:, ~np.eye(g.K, dtype=bool)] > 0, axis=1)
    dlt = np.where(noiseless, np.inf, dlt)
    r = theory.r_star_closed(dlt[g.cfg], a["class"], a["instance"])
    return np.where(applies[g.cfg], r, np.nan)


# --------------------------------------------------------------------------------------------
# Exact solver: one batched ExactSolver per K, rounds by distill.run_rounds
# --------------------------------------------------------------------------------------------

def _exact_cells(g: Cells, quantity: str, R: int, ties: str) -> dict:
    diag, alpha, L, w = g.class_structure()
    solver = ExactSolver.group_batch(diag=diag, alpha=alpha, L=L, w=w, counts=g.counts[g.cfg],
                                     lam=g.lam)
    log.debug("exact solver, K = %d: %d cells, rounds 0..%d", g.K, g.size, R)
    res = run_rounds(solver, R, pll=quantity == "pll_gain", pll_ties=ties,
                     until_perfect=quantity != "acc_round_R", on_failure="mark")
    failed = ~res.ok
    cert = np.nanmax(np.vstack([res.residual, res.pll_residual[None]]), axis=0)
    cert = np.where(failed, np.maximum(np.nan_to_num(cert, nan=np.inf), 2 * CERT_BOUND), cert)
    out = {"certificate": cert}
    if quantity == "r_star":
        out["r_star"] = np.where(failed | (res.r_star < 0), np.nan, res.r_star)
        frag = res.r_star_fragile
    elif quantity == "acc_round_R":
        out["acc_round_R"] = np.where(failed, np.nan, res.train_acc[R])
        frag = res.fragile[R]
    else:
        best = np.where(failed, np.nan, res.best_acc)
        pll = np.where(failed, np.nan, res.pll_acc)
        out.update(pll_gain=pll - best, pll_acc=pll, sd_best_acc=best)
        frag = res.pll_fragile | np.any(res.fragile, axis=0)
    out["fragile"] = np.where(failed, np.nan, frag.astype(np.float64))
    return out


# --------------------------------------------------------------------------------------------
# Linear solver: closed form (L) through the per-instance decomposition, vectorised
# --------------------------------------------------------------------------------------------

_LINEAR_BLOCK = 2 ** 21
"""Floats per block of (cells, K, K, K) arrays in the closed-form sweep."""


def _linear_block_cells(K: int) -> int:
    """Cells per block of (cells, K, K, K) arrays of :data:`_LINEAR_BLOCK` floats."""
    return max(1, _LINEAR_BLOCK // (K ** 3))


def _linear_outputs(comps: dict, a: dict, t, K: int) -> np.ndarray:
    """Outputs (C, K * K, K) = 1/K + sum_level a_level^t comp_level (comps of V - 1/K)."""
    P = 1.0 / K
    for name, comp in comps.items():
        P = P + (a[name] ** t)[:, None, None] * comp
    return P


def _linear_cells(g: Cells, quantity: str, R: int, ties: str) -> dict:
    a = g.averaging()
    names = theory.level_names(g.three_level)
    if quantity == "r_star":
        coef = theory.pair_coefficients(g.counts, g.superclass_of)
        log.debug("linear solver, K = %d: r* of %d cells", g.K, g.size)
        levels = np.stack([a[nm] for nm in names], axis=1)
        # fragile: r* changes when the tolerance is scaled by FRAGILE_FACTOR or its inverse
        tau = float(tie_tolerance())
        r, *moved = theory.first_perfect_linear(
            coef[g.cfg], levels, R, tie_tol=[tau, FRAGILE_FACTOR * tau, tau / FRAGILE_FACTOR])
        same = [(m == r) | (np.isnan(m) & np.isnan(r)) for m in moved]
        return {"r_star": r, "fragile": (~(same[0] & same[1])).astype(np.float64)}
    K = g.K
    true, given = np.divmod(np.arange(K * K), K)
    base_comps = theory.grid_components(np.eye(K)[given] - 1.0 / K, g.counts, g.superclass_of)
    nc = g.size
    chunk = _linear_block_cells(K)
    names_out = (("acc_round_R", "fragile") if quantity == "acc_round_R"
                 else ("pll_gain", "pll_acc", "sd_best_acc", "fragile"))
    out = {name: np.full(nc, np.nan) for name in names_out}
    progress = Progress(log, total=nc, what="cell")
    for s0 in range(0, nc, chunk):
        sl = slice(s0, min(nc, s0 + chunk))
        cfg = g.cfg[sl]
        w = g.counts[cfg].reshape(-1, K * K).astype(np.float64)
        comps = {k: v[cfg] for k, v in base_comps.items()}
        ac = {k: v[sl] for k, v in a.items()}

        def acc_of(P, w=w):
            return accuracy(P, true, given, w)[0]

        def fragile_of(P, w=w):
            return fragile(decision_margins(P, true, w)[0])

        if quantity == "acc_round_R":
            P = _linear_outputs(comps, ac, R + 1, K)
            out["acc_round_R"][sl] = acc_of(P)
            out["fragile"][sl] = fragile_of(P)
        else:
            best = np.full(cfg.size, -np.inf)
            done = np.zeros(cfg.size, dtype=bool)
            frag = np.zeros(cfg.size, dtype=bool)
            P0 = None
            for r in range(R + 1):
                P = _linear_outputs(comps, ac, r + 1, K)
                P0 = P if r == 0 else P0
                acc = acc_of(P)
                best = np.where(done, best, np.maximum(best, acc))
                frag |= ~done & fragile_of(P)
                done |= np.all(correct(P, true) | (w == 0), axis=1)
                if done.all():
                    break
            Tp = pll_targets(P0, ties=ties) - 1.0 / K
            pcomps = theory.grid_components(Tp, g.counts[cfg], g.superclass_of)
            Ppll = _linear_outputs(pcomps, ac, 1, K)
            pll_acc = acc_of(Ppll)
            frag |= fragile_of(Ppll) | fragile(pll_target_margin(P0, weight=w))
            out["pll_acc"][sl], out["sd_best_acc"][sl] = pll_acc, best
            out["pll_gain"][sl] = pll_acc - best
            out["fragile"][sl] = frag
        progress.step(f"linear, K = {K}", n=cfg.size)
    return out
