"""One model, one noise setting, R rounds (+ PLL): what ``sdtheory simulate`` computes.

Data flow (DESIGN.md): Gram/feature model -> labels (true, given) -> solvers -> rounds ->
metrics -> a JSON-ready dict that carries its configuration and the package version.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np

from sdtheory import gram, noise
from sdtheory.distill import SDResult, self_distill
from sdtheory.solve import ExactSolver, GroupSolver, LinearSolver, check_lam

__all__ = ["SimConfig", "Problem", "build_problem", "make_solver", "simulate", "load_counts"]

MODELS = ("block", "superclass", "gmm")
SOLVERS = ("exact", "linear", "trained")


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a simulation (the ``config`` block of the JSON output).

    Attributes mirror the ``sdtheory simulate`` options; ``counts`` (K x K integers, row = true
    class, column = given label) overrides ``noise``/``eta``.
    """

    model: str = "block"
    K: int = 4
    n: int = 500
    c: float = 0.4
    d: float = 0.1
    e: float = 0.0
    classes_per_superclass: int = 2
    dim: int = 2000
    jitter: float = 0.0
    lam: float = 1e-5
    noise: str = "sym"
    eta: float = 0.5
    counts: tuple[tuple[int, ...], ...] | None = None
    sampled: bool = False
    seed: int = 0
    rounds: int = 10
    solvers: tuple[str, ...] = ("exact", "linear")
    pll: bool = False
    pll_ties: str = "lower"

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        for s in self.solvers:
            if s not in SOLVERS:
                raise ValueError(f"solver must be one of {SOLVERS}, got {s!r}")
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if not (math.isfinite(self.jitter) and self.jitter >= 0):
            raise ValueError(f"jitter must be >= 0, got {self.jitter}")
        check_lam(self.lam)
        if self.model == "superclass" and self.K % self.classes_per_superclass:
            raise ValueError(f"K = {self.K} must be a multiple of classes-per-superclass "
                             f"m = {self.classes_per_superclass}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["counts"] = None if self.counts is None else [list(r) for r in self.counts]
        d["solvers"] = list(self.solvers)
        return d


@dataclass(frozen=True)
class Problem:
    """A built simulation input: model, labels, and (when not a pure block model) G / X."""

    config: SimConfig
    model: gram.BlockModel | None
    corruption: noise.Corruption
    G: np.ndarray | None          # dense Gram matrix (None: group reduction on ``model``)
    X: np.ndarray | None          # explicit features (gmm) if any


def load_counts(path: str) -> tuple[tuple[int, ...], ...]:
    """Read a JSON K x K integer count matrix (row = true class, column = given label)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except OSError as err:
        raise ValueError(f"--counts: cannot read {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"--counts: {path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if isinstance(data, dict) and "counts" in data:
        data = data["counts"]
    if not (isinstance(data, list) and data and all(isinstance(r, list) for r in data)):
        raise ValueError(f"--counts: {path} must hold a K x K list of lists of integers")
    rows = []
    for i, r in enumerate(data):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in r):
            raise ValueError(f"--counts: row {i} of {path} has a non-integer entry")
        rows.append(tuple(r))
    return tuple(rows)


def _model(cfg: SimConfig) -> gram.BlockModel:
    if cfg.model == "superclass":
        m = cfg.classes_per_superclass
        return gram.three_level(cfg.K // m, m, cfg.n, cfg.c, cfg.d, cfg.e)
    return gram.two_level(cfg.K, cfg.n, cfg.c, cfg.d)


def build_problem(cfg: SimConfig) -> Problem:
    """Model -> labels (-> dense G when jitter or features make the block structure inexact)."""
    model = _model(cfg)
    K, sizes = model.K, model.sizes
    if cfg.counts is not None:
        cor = noise.corruption_from_counts(np.asarray(cfg.counts), sizes=sizes)
    else:
        T = noise.transition_matrix(cfg.noise, K, cfg.eta, superclass_of=model.superclass_of)
        cor = (noise.corrupt_sampled(T, model.labels(), cfg.seed) if cfg.sampled
               else noise.corrupt_exact(T, sizes))
    G = X = None
    if cfg.model == "gmm":
        X, y = gram.gmm_features(K, cfg.n, cfg.c, cfg.d, cfg.dim, cfg.seed)
        # gmm_features orders samples by class like the corruption does.
        assert np.array_equal(y, cor.true)
        G = X @ X.T
    elif cfg.jitter > 0 or "trained" in cfg.solvers:
        G = model.dense()
    if cfg.jitter > 0:
        G = gram.jitter(G, cfg.jitter, cfg.seed)
    return Problem(config=cfg, model=model, corruption=cor, G=G, X=X)


def _group_exact(p: Problem) -> bool:
    """The group reduction is exact for block models without jitter."""
    return p.config.model != "gmm" and p.config.jitter == 0


def make_solver(p: Problem, which: str, *, progress: bool = False):
    """The :class:`~sdtheory.solve.Solver` for one solver name on a built problem."""
    cor, lam = p.corruption, p.config.lam
    if which == "exact":
        if _group_exact(p):
            return GroupSolver(p.model, cor.counts, lam)
        return ExactSolver(p.G, lam, given=cor.given, true=cor.true, K=cor.K)
    if which == "linear":
        if _group_exact(p):
            return LinearSolver.groups(p.model, cor.counts, lam)
        return LinearSolver.full(p.G, lam, given=cor.given, true=cor.true, K=cor.K)
    if which == "trained":
        from sdtheory.train import TrainedSolver, feature_factor

        X = p.X if p.X is not None else feature_factor(p.G)
        return TrainedSolver(X, cor.given, lam, true=cor.true, K=cor.K, progress=progress)
    raise ValueError(f"unknown solver {which!r}")


def _theory(p: Problem) -> tuple[float, int | None]:
    """Delta and the closed-form r* (theory.md section 5) for this corruption."""
    from sdtheory import theory

    counts = p.corruption.counts
    return float(noise.delta(counts)), theory.r_star_theory(p.model, counts, p.config.lam)


def simulate(cfg: SimConfig, *, progress: bool = False) -> dict:
    """Run the configured simulation; return the JSON document of DESIGN.md."""
    from sdtheory import __version__

    p = build_problem(cfg)
    results: dict[str, SDResult] = {}
    for which in cfg.solvers:
        solver = make_solver(p, which, progress=progress)
        results[which] = self_distill(solver, cfg.rounds, pll=cfg.pll, progress=progress,
                                      pll_ties=cfg.pll_ties)
    dlt, r_th = _theory(p)
    cor = p.corruption
    solver_docs = {k: v.to_dict() for k, v in results.items()}
    if p.X is not None:
        for k, v in results.items():
            _add_test_accuracy(p, v, solver_docs[k])
    return {
        "config": cfg.to_dict(),
        "version": __version__,
        "realised_noise_rate": cor.rate,
        "counts": cor.counts.tolist(),
        "delta": dlt,
        "r_star_theory": r_th,
        "solvers": solver_docs,
    }


def _add_test_accuracy(p: Problem, res: SDResult, doc: dict) -> None:
    """Population (test) accuracy per round on fresh Gaussian-mixture points (theory.md 4).

    The logits of a fresh x = mu_k + sigma xi are Gaussian given the training set; the accuracy
    of class k is a Gaussian orthant probability (:mod:`sdtheory.population`). For closed-form
    solvers W = (T_r - P_r)^T X / (N lam), the weights at the solution of round r.
    """
    from sdtheory.distill import pll_targets
    from sdtheory.population import population_by_round

    cfg = p.config
    means = gram.gmm_means(cfg.K, cfg.c, cfg.d, cfg.dim)
    sigma = math.sqrt((1.0 - cfg.c) / cfg.dim)
    pop = population_by_round(res.rounds, means, sigma, X=p.X, lam=cfg.lam,
                              given=p.corruption.given, seed=cfg.seed)
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
           + (" (sampled)" if cfg["sampled"] else " (exact counts)")),
        f"realised noise rate {doc['realised_noise_rate']:.4f}   Delta {doc['delta']:.4f}   "
        f"closed-form r* {doc['r_star_theory'] if doc['r_star_theory'] is not None else '-'}",
    ]

    def f(v):
        return "    -   " if v is None else f"{v:8.4f}"

    for name, s in doc["solvers"].items():
        lines.append("")
        lines.append(f"[{name}]  r* = {s['r_star'] if s['r_star'] is not None else 'not reached'}")
        test = "test_acc" in s["rounds"][0]
        lines.append(" round  train_acc  clean_acc  noisy_acc  residual"
                     + ("   test_acc" if test else ""))

        def row(label, r):
            return (f" {label:>5}  {f(r['train_acc'])}   {f(r['clean_acc'])}   "
                    f"{f(r['noisy_acc'])}   {r['residual']:.1e}"
                    + (f"   {f(r.get('test_acc'))}" if test else ""))

        lines.extend(row(r["round"], r) for r in s["rounds"])
        if s["pll"] is not None:
            lines.append(row("PLL", s["pll"]))
    return "\n".join(lines)
