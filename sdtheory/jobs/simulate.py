"""One model, one noise setting, R rounds (+ PLL): what ``sdtheory simulate`` computes.

Data flow: problem (:mod:`sdtheory.problem`) -> solvers -> rounds (:mod:`sdtheory.distill`) ->
metrics -> a JSON-ready dict that carries its configuration and the package version.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from sdtheory import models, noise
from sdtheory._memory import PROCESS_BYTES, check_memory, group_exact_bytes
from sdtheory._validate import (
    as_int,
    check_choice,
    check_label_weight,
    check_positive,
    check_rounds,
    set_checked,
)
from sdtheory.distill import PLL_TIES, SDResult, self_distill
from sdtheory.problem import (
    ProblemConfig,
    Scenario,
    build_problem,
    dense_estimate,
    gram_of,
    solver_of,
)
from sdtheory.relation import METHODS, check_purity
from sdtheory.solvers.linear import CLOSED_FORM_LOSSES

__all__ = ["SimConfig", "memory_estimate", "relation_of", "simulate", "format_table"]

log = logging.getLogger(__name__)

SOLVERS = ("exact", "linear", "trained")
RELATION_VIEWS = ("gmm", "features", "block")


def _solver_names(solvers) -> tuple[str, ...]:
    """One solver name or several, each one of :data:`SOLVERS`, as a tuple."""
    names = (solvers,) if isinstance(solvers, str) else tuple(solvers)
    for s in names:
        check_choice(s, SOLVERS, "solver")
    return names


@dataclass(frozen=True)
class SimConfig(ProblemConfig):
    """A simulation: the problem (:class:`~sdtheory.problem.ProblemConfig`) plus rounds,
    solvers and the PLL student (the ``config`` block of the JSON output)."""

    rounds: int = 10
    solvers: tuple[str, ...] = ("exact", "linear")
    pll: bool = False
    pll_ties: str = "split"
    loss: str = "ce"
    label_weight: float = 0.0
    method: str = "sd"
    relation_view: str = "gmm"
    relation_snr: float = 1.0
    relation_dim: int = 32
    relation_k: int = 10
    relation_tau: float = 0.1
    relation_purity: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        solvers = set_checked(self, "solvers", _solver_names)
        check_choice(self.loss, CLOSED_FORM_LOSSES, "loss")
        if self.loss == "mse" and solvers != ("linear",):
            raise ValueError("the squared loss (--loss mse) has an exact closed form: it runs "
                             "with --solver linear only")
        set_checked(self, "label_weight", check_label_weight, softmax=self.loss == "ce")
        check_choice(self.method, METHODS, "method")
        check_choice(self.relation_view, RELATION_VIEWS, "relation view")
        if self.method == "relation" and self.relation_view == "features" and self.model != "gmm":
            raise ValueError("--relation-view features needs per-sample features: --model gmm")
        for name in ("relation_snr", "relation_tau"):
            set_checked(self, name, check_positive, name.replace("_", " "))
        set_checked(self, "relation_purity", check_purity)
        set_checked(self, "relation_dim", as_int, "relation dim", lo=1, hi=100_000)
        # the bound N - 1 matters only where the relation is built from neighbours
        k_max = max(1, self.K * self.n - 1) if self.method == "relation" else None
        set_checked(self, "relation_k", as_int, "relation k", lo=1, hi=k_max)
        set_checked(self, "rounds", check_rounds)
        set_checked(self, "pll", bool)
        check_choice(self.pll_ties, PLL_TIES, "pll_ties")

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["solvers"] = list(self.solvers)
        return d


def _theory(p: Scenario) -> tuple[float, int | None]:
    """Delta and the closed-form r* (docs/theory.md section 7) for this corruption."""
    from sdtheory import theory

    counts = p.corruption.counts
    return float(noise.delta(counts)), theory.r_star_theory(p.model, counts, p.config.lam)


LINEAR_GROUP_PER_K2 = 600.0
"""Bytes per K^2 of the group-reduced closed form (calibrated on the K = 1000 linear job of
benchmarks/bench_memory.py)."""


def memory_estimate(cfg: SimConfig) -> tuple[float, str]:
    """(peak bytes, what sets them) of :func:`simulate` for ``cfg``, from the configuration
    alone: one process (:data:`~sdtheory._memory.PROCESS_BYTES`) plus the largest path it
    takes: the dense N x N solvers (jitter, gmm features, a per-sample relation on a block
    model, or the trained solver's N x N features of a block model), else the group-reduced
    exact solver (K^3) and closed form (K^2). Checked before anything is built
    (:func:`simulate`); benchmarks/bench_memory.py compares it with the measured peak."""
    N = cfg.K * cfg.n
    relation_dense = cfg.method == "relation" and cfg.relation_view != "block"
    # the trained solver trains a block model through explicit N x N features
    factor = "trained" in cfg.solvers and cfg.model != "gmm"
    if cfg.model == "gmm" or cfg.jitter > 0 or relation_dense or factor:
        need, what = dense_estimate(cfg, N, factor)
        if factor and not (cfg.model == "gmm" or cfg.jitter > 0):
            what = (f"the N x N features of N = {N} samples that the trained solver needs "
                    "(--n, --K)")
        elif relation_dense and not (cfg.model == "gmm" or cfg.jitter > 0):
            what = (f"the dense N x N Gram matrix of N = {N} samples that the relation method "
                    "needs (--n)")
        return need, what
    need = PROCESS_BYTES + LINEAR_GROUP_PER_K2 * cfg.K ** 2
    if "exact" in cfg.solvers:
        need += group_exact_bytes(cfg.K)
    return need, (f"the group-reduced problem of K = {cfg.K} classes (--K; the exact solver "
                  "holds K^3 numbers, --solver linear K^2)")


def simulate(cfg: SimConfig) -> dict:
    """Run the configured simulation; return its JSON document (config, version, Delta,
    closed-form r*, and per solver every round's accuracies, certificate and group means)."""
    from sdtheory import __version__

    check_memory(*memory_estimate(cfg))
    p = build_problem(cfg)
    results: dict[str, SDResult] = {}
    tolerances: dict[str, float | None] = {}
    relation, gram, purity = None, None, None
    if cfg.method == "relation" and cfg.relation_view == "block":
        # a block-constant relation: the group reduction still applies (relation on units)
        purity = cfg.relation_purity
    elif cfg.method == "relation":
        relation, purity = relation_of(p)
        if isinstance(gram_of(p), models.BlockModel):
            # the relation acts on samples: solve on the block model's dense G (checked by
            # memory_estimate)
            gram = p.model.dense()
    for which in cfg.solvers:
        log.debug("%s solver: rounds 0..%d%s", which, cfg.rounds, " + PLL" if cfg.pll else "")
        solver = solver_of(p, which, gram)
        if cfg.method == "relation" and cfg.relation_view == "block":
            from sdtheory.relation import class_relation, unit_relation

            relation = unit_relation(class_relation(cfg.K, cfg.relation_purity), solver.true,
                                     solver.weight[0])
        results[which] = self_distill(solver, cfg.rounds, pll=cfg.pll, pll_ties=cfg.pll_ties,
                                      label_weight=cfg.label_weight, relation=relation)
        # the exact solver's tolerance bounds its certificate (the trained solver's is on the
        # gradient norm, the closed form has none)
        tolerances[which] = float(solver.tol) if which == "exact" else None
    dlt, r_th = _theory(p)
    if cfg.loss != "ce" or cfg.label_weight != 0.0 or cfg.method != "sd":
        r_th = None           # the closed-form r* is that of plain SD with the softmax loss
    cor = p.corruption
    solver_docs = {k: {**v.to_dict(), "tolerance": tolerances[k]} for k, v in results.items()}
    if p.X is not None:
        for k, v in results.items():
            _add_test_accuracy(p, v, solver_docs[k], relation)
    return {
        "config": cfg.to_dict(),
        "version": __version__,
        "realised_noise_rate": cor.rate,
        "counts": cor.counts.tolist(),
        "delta": dlt,
        "r_star_theory": r_th,
        **({"relation_purity": purity} if purity is not None else {}),
        "solvers": solver_docs,
    }


def relation_of(p: Scenario):
    """The relation matrix of a relation-method simulation and its purity
    (:mod:`sdtheory.relation`): from a second Gaussian-mixture view of the true classes (seed
    + 1) or from the classifier's own features."""
    from sdtheory.relation import gmm_view, relation_matrix, relation_purity

    cfg = p.config
    true = p.corruption.true
    Phi = (p.X if cfg.relation_view == "features" else
           gmm_view(true, snr=cfg.relation_snr, dim=cfg.relation_dim, seed=cfg.seed + 1))
    R = relation_matrix(Phi, k=cfg.relation_k, tau=cfg.relation_tau)
    return R, relation_purity(R, true)


def _add_test_accuracy(p: Scenario, res: SDResult, doc: dict, relation=None) -> None:
    """Population (test) accuracy per round on fresh Gaussian-mixture points (docs/theory.md
    section 10).

    The logits of a fresh x = mu_k + sigma xi are Gaussian given the training set; the accuracy
    of class k is a Gaussian orthant probability (:mod:`sdtheory.population`). For closed-form
    solvers W = (T_r - P_r)^T X / (N lam), the weights at the solution of round r.
    """
    from sdtheory.distill import pll_targets
    from sdtheory.population import population_by_round

    cfg = p.config
    means = models.gmm_means(cfg.K, cfg.c, cfg.d, cfg.dim)
    sigma = math.sqrt((1.0 - cfg.c) / cfg.dim)
    from sdtheory.distill import next_targets

    Y = np.eye(cfg.K)[p.corruption.given]
    targets = [Y] + [next_targets(Y, rr.P, cfg.label_weight, relation)
                     for rr in res.rounds[:-1]]
    pop = population_by_round(res.rounds, means, sigma, X=p.X, lam=cfg.lam, targets=targets,
                              seed=cfg.seed)
    for rd, acc in zip(doc["rounds"], pop.test):
        rd["test_acc"] = float(acc)
    if res.pll is not None:
        pll = population_by_round([res.pll], means, sigma, X=p.X, lam=cfg.lam,
                                  targets=[pll_targets(res.rounds[0].P, ties=cfg.pll_ties)],
                                  seed=cfg.seed)
        doc["pll"]["test_acc"] = float(pll.test[0])


def format_table(doc: dict) -> str:
    """Readable text version of :func:`simulate`'s result."""
    cfg = doc["config"]
    lines = [
        f"sdtheory {doc['version']}  model={cfg['model']} K={cfg['K']} n={cfg['n']} c={cfg['c']} "
        f"d={cfg['d']} lam={cfg['lam']:g}  noise="
        + ("counts file" if cfg["counts"] else f"{cfg['noise']} eta={cfg['eta']}"
           + (" (sampled)" if cfg["sampled"] else " (exact counts)"))
        + ("  loss=mse (kernel ridge, closed form exact)" if cfg.get("loss") == "mse" else "")
        + (f"  label weight alpha={cfg['label_weight']:g}" if cfg.get("label_weight") else "")
        + (f"  relation-guided: view {cfg['relation_view']}"
           + (f" snr={cfg['relation_snr']:g}" if cfg["relation_view"] == "gmm" else "")
           + ("" if cfg["relation_view"] == "block" else
              f" k={cfg['relation_k']} tau={cfg['relation_tau']:g}")
           + f", purity {doc['relation_purity']:.3f}" if cfg.get("method") == "relation"
           else ""),
        f"realised noise rate {doc['realised_noise_rate']:.4f}   Delta {doc['delta']:.4f}   "
        f"closed-form r* {doc['r_star_theory'] if doc['r_star_theory'] is not None else '-'}",
    ]

    def f(v):
        return "    -   " if v is None else f"{v:8.4f}"

    for name, s in doc["solvers"].items():
        lines.append("")
        lines.append(f"[{name}]  r* = {s['r_star'] if s['r_star'] is not None else 'not reached'}"
                     + ("  (fragile: it changes with the tie tolerance x10 or /10)"
                        if s.get("r_star_fragile") else ""))
        test = "test_acc" in s["rounds"][0]
        runs = s["rounds"] + ([s["pll"]] if s["pll"] is not None else [])
        strict = any(r["train_acc_strict"] != r["train_acc"] for r in runs)
        lines.append(" round  train_acc  clean_acc  noisy_acc  residual"
                     + ("   test_acc" if test else "") + ("     strict" if strict else ""))

        tol = s.get("tolerance")
        above = tol is not None and any(r["residual"] > tol for r in runs)

        def row(label, r, test=test, strict=strict, tol=tol):
            mark = "*" if tol is not None and r["residual"] > tol else " "
            return (f" {label:>5}  {f(r['train_acc'])}   {f(r['clean_acc'])}   "
                    f"{f(r['noisy_acc'])}   {r['residual']:.1e}{mark}"
                    + (f"   {f(r.get('test_acc'))}" if test else "")
                    + (f"   {f(r['train_acc_strict'])}" if strict else "")
                    + ("   ! " + _margin_text(r) if r.get("fragile") else ""))

        lines.extend(row(r["round"], r) for r in s["rounds"])
        if s["pll"] is not None:
            lines.append(row("PLL", s["pll"]))
        if above:
            lines.append(f"  (*: certificate above the tolerance {tol:g}, accepted at the float64 "
                         "round-off floor of (E); docs/theory.md section 2.3)")
        if strict:
            lines.append("  (train_acc: a true class tied for the top counts 1/t, the mean over "
                         "random tie-breaks; strict: it counts as wrong)")
        if any(r.get("fragile") for r in runs):
            lines.append("  (!: fragile, the accuracy changes were the tie tolerance 10 times "
                         "larger or smaller: the decision gap nearest the tolerance, in units "
                         "of it; docs/theory.md section 9)")
    return "\n".join(lines)


def _margin_text(r: dict) -> str:
    """The decision margin of a fragile row: its gap in units of the tie tolerance (and, for
    the PLL student, that of its top-2 targets)."""
    from sdtheory.metrics import fragile

    parts = []
    if r.get("decision_margin") is not None and fragile(r["decision_margin"]):
        parts.append(f"gap {r['decision_margin']:.2g} x tol {r['tie_tolerance']:.0e}")
    if r.get("target_margin") is not None and fragile(r["target_margin"]):
        parts.append(f"top-2 target gap {r['target_margin']:.2g} x the teacher's tol")
    return "; ".join(parts)
