"""The figures: one config file, one results file, one plot each.

Every figure NAME runs the same pipeline:

    experiments/NAME.toml  ->  compute (model -> labels -> solver -> rounds -> metrics)
        ->  OUT/NAME.json or OUT/NAME.csv (+ sidecar), with the full config and the version
        ->  one function of :mod:`sdtheory.plots`, which reads only that results file
        ->  OUT/NAME.png

A config file holds parameters only; its ``[quick]`` table overrides some of them with reduced
settings (``--quick``, used by the tests). Results files are written to a temporary file and
renamed, so an interrupted run never leaves a partial one.

``sdtheory figures`` (:mod:`sdtheory.cli.figures`) regenerates all of them, or ``--only NAME``.
Progress goes to the ``sdtheory.jobs.figures`` logger.

Precision of the results files: :mod:`sdtheory.results` (the one rounding policy; each file
states it in a ``"precision"`` entry, the phase CSVs in their header line).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import sdtheory
from sdtheory._io import jsonable
from sdtheory._validate import as_float, as_int
from sdtheory.jobs.sweep.grid import decimal_grid
from sdtheory.plots import figures as plots
from sdtheory.results import probe_csv_text, write_results

__all__ = [
    "EXPERIMENTS",
    "Figure",
    "FigureError",
    "FigureFailed",
    "FIGURES",
    "experiments_dir",
    "load_config",
    "run_figure",
    "run_figures",
]

log = logging.getLogger(__name__)


class FigureError(RuntimeError):
    """A figure's computation produced no trustworthy result (e.g. uncertified cells)."""


class FigureFailed(RuntimeError):
    """Figure ``name`` failed (a solver missed its tolerance, or a :class:`FigureError`)."""

    def __init__(self, name: str, err: Exception):
        super().__init__(f"{name} failed: {err}")
        self.name, self.err = name, err


EXPERIMENTS = Path(sdtheory.__file__).resolve().parents[1] / "experiments"
"""Where the figure configs live: ``experiments/`` beside the package directory."""


# --------------------------------------------------------------------------------------------
# Configs and results files
# --------------------------------------------------------------------------------------------

def experiments_dir(path: Path | None = None) -> Path:
    """The experiments directory, or FileNotFoundError saying where it was looked for."""
    d = Path(path) if path is not None else EXPERIMENTS
    if not d.is_dir():
        raise FileNotFoundError(
            f"experiments directory not found at {d}: the figure configs (NAME.toml) live in "
            "experiments/ beside the sdtheory package; run from a source checkout "
            "(pip install -e .)")
    return d


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(name: str, quick: bool = False, directory: Path | None = None) -> dict:
    """Parameters of figure ``name`` from ``experiments/NAME.toml``.

    Args:
      name: figure name.
      quick: apply the file's ``[quick]`` table (reduced settings) over the parameters.
      directory: experiments directory (default :data:`EXPERIMENTS`).

    Returns:
      the parameters as a dict, without the ``quick`` table, plus ``quick: bool``.
    """
    path = experiments_dir(directory) / f"{name}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"no config for figure {name!r}: {path} is missing")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        reason = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else str(err)
        raise ValueError(f"{path}: not a valid TOML file ({reason})") from None
    over = raw.pop("quick", {})
    if not isinstance(over, dict):
        raise ValueError(f"{path}: quick must be a table of reduced settings ([quick]), got "
                         f"{over!r}")
    cfg = _merge(raw, over) if quick else raw
    empty = [k for k, v in cfg.items() if isinstance(v, list) and not v]
    if empty:
        raise ValueError(f"{path}: {empty[0]} is an empty list; give at least one value")
    cfg["quick"] = bool(quick)
    return cfg


# --------------------------------------------------------------------------------------------
# approximation: exact (E) vs linearised (L) students at the authors' defaults
# --------------------------------------------------------------------------------------------

def compute_approximation(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """Training accuracy (clean / noisy / all) per round, exact solver vs linearised form.

    The two-level model with symmetric jitter (full N x N Gram matrix), sampled noise; the
    exact solver (:class:`~sdtheory.solvers.ExactSolver`) runs rounds 0, 1, ... of SD until its
    first round with every training label correct (r*, strict accuracy 1), at most
    ``max_rounds``; the linearised one evaluates P_r = 1/K + A^(r+1) (Y - 1/K) directly at the
    same rounds (its outputs may leave the simplex, so it is not iterated through targets), and
    its own first 100% round is recorded.
    """
    from sdtheory import models
    from sdtheory.distill import run_rounds
    from sdtheory.jobs.simulate import SimConfig
    from sdtheory.metrics import accuracy
    from sdtheory.problem import build_problem, solver_of

    R_max = int(cfg["max_rounds"])
    sim = SimConfig(model="block", K=cfg["K"], n=cfg["n"], c=cfg["c"], d=cfg["d"],
                    jitter=cfg["eps"], lam=cfg["lam"], noise=cfg["noise"], eta=cfg["eta"],
                    sampled=cfg["sampled"], seed=cfg["seed"], rounds=R_max)
    p = build_problem(sim)
    N = p.model.N
    # The requested eps (0.05 in the config), on the same model and seed: its smallest eigenvalue.
    eps_check = float(cfg["eps_requested"])
    min_eig_requested = models.min_eigenvalue(models.jitter(p.model.dense(), eps_check,
                                                            cfg["seed"]))
    exact_solver = solver_of(p, "exact")       # refuses an indefinite G
    min_eig = models.min_eigenvalue(p.G)
    log(f"N = {N}, min eigenvalue {min_eig:.4f} at eps = {cfg['eps']}, "
        f"{min_eig_requested:.4f} at eps = {eps_check}")
    ex = run_rounds(exact_solver, R_max, until_perfect=True, keep_outputs=True)
    r_star = int(ex.r_star[0])
    trained = len(ex.outputs)                    # rounds 0..trained-1
    log(f"exact rounds 0..{trained - 1} done; r* = {r_star if r_star >= 0 else 'not reached'}")
    lin = solver_of(p, "linear")
    rows = {"exact": [], "linear": []}
    gap = []
    P_lin = lin.round_outputs(np.arange(trained))          # (rounds, U, K)
    for r in range(trained):
        P_e = ex.outputs[r][0]
        rows["exact"].append({"round": r, "train_acc": ex.train_acc[r, 0],
                              "clean_acc": ex.clean_acc[r, 0], "noisy_acc": ex.noisy_acc[r, 0],
                              "train_acc_strict": ex.strict_acc[r, 0],
                              "residual": ex.residual[r, 0]})
        P = P_lin[r]
        acc, clean, noisy, strict = accuracy(P, lin.true, lin.given, lin.weight[0])
        rows["linear"].append({"round": r, "train_acc": acc, "clean_acc": clean,
                               "noisy_acc": noisy, "train_acc_strict": strict,
                               "residual": None})
        gap.append(float(np.max(np.abs(P - P_e))))
    r_star_lin = next((row["round"] for row in rows["linear"] if row["train_acc_strict"] == 1.0),
                      None)
    if r_star_lin is None:                        # later than the exact solver's rounds
        r_star_lin = lin.first_perfect_round(R_max)
    log(f"linearised r* = {r_star_lin}")
    cor = p.corruption
    data = {
        "N": N,
        "realised_noise_rate": cor.rate,
        "counts": cor.counts,
        "delta": float(sdtheory.delta(cor.counts)),
        "min_eigenvalue": min_eig,
        "min_eigenvalue_requested_eps": min_eig_requested,
        # Wigner semicircle: the jitter's spectrum has radius 2 eps sqrt(N/3); G stays PSD
        # (to first order) while that radius is below the smallest block eigenvalue 1 - c.
        "eps_psd_bound": (1.0 - cfg["c"]) / (2.0 * math.sqrt(N / 3.0)),
        # first round with every training label correct (None: not within max_rounds)
        "r_star_exact": r_star if r_star >= 0 else None,
        "r_star_linear": r_star_lin,          # None: not within max_rounds
        "solvers": rows,
        "max_abs_output_gap": gap,
    }
    return write_results(out / "approximation.json", "approximation", cfg, data)


# --------------------------------------------------------------------------------------------
# label_averaging: outputs on the simplex and the per-eigenspace shrink
# --------------------------------------------------------------------------------------------

def _eigenspace_norms(X: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Frobenius norms of the global / class / instance components of X (N x K), the
    eigenspaces of the two-level block model (:func:`sdtheory.theory.level_components`)."""
    from sdtheory.theory import level_components

    parts = level_components(X, np.ones(X.shape[0]), true)
    return {name: float(np.linalg.norm(v)) for name, v in parts.items()}


def compute_label_averaging(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """Exact outputs of every training instance for selected rounds, and the shrink per level.

    The simplex panels use the jittered Gram matrix (``eps``: it separates the instances of a
    (true, given) group). The shrink is measured twice with the same labels: on the pure block
    model (eps = 0), whose eigenspaces are exactly the global / class / instance levels of
    a_j = mu_j / (mu_j + K N lam), and on the jittered matrix, whose jitter mixes class signal
    into the within-class directions (the instance part then stops shrinking at a floor).
    """
    from sdtheory import models, theory
    from sdtheory.distill import self_distill
    from sdtheory.problem import ProblemConfig, build_problem
    from sdtheory.solvers import ExactSolver, one_hot

    K = int(cfg["K"])
    shown = [int(r) for r in cfg["rounds_shown"]]
    R = max(int(cfg["rounds"]), max(shown))
    sim = ProblemConfig(model="block", K=K, n=cfg["n"], c=cfg["c"], d=cfg["d"],
                        jitter=cfg["eps"], lam=cfg["lam"], noise=cfg["noise"], eta=cfg["eta"],
                        sampled=False, seed=cfg["seed"])
    p = build_problem(sim)
    cor, model = p.corruption, p.model
    G = p.G if p.G is not None else model.dense()
    res = self_distill(ExactSolver(gram=G, labels=cor, lam=cfg["lam"]), R)
    log(f"exact rounds 0..{R} done, jittered G (N = {model.N})")
    # The same labels on the pure block model (no jitter).
    pure = self_distill(ExactSolver(gram=model.dense(), labels=cor, lam=cfg["lam"]), R)
    log(f"exact rounds 0..{R} done, pure block model")

    a = theory.averaging_eigenvalues(model, cfg["lam"])
    rounds = list(range(R + 1))
    closed = {name: [a_j ** (r + 1) for r in rounds] for name, a_j in a.items()}
    Y0 = _eigenspace_norms(one_hot(cor.given, K) - 1.0 / K, cor.true)
    # Levels with label signal to shrink (the global part of Y - 1/K is 0 when every label is
    # given equally often: its ratio would be 0/0).
    levels = [name for name in ("global", "class", "instance") if Y0[name] > 1e-12]

    def measured(result):
        ratios = {name: [] for name in levels}
        for rr in result.rounds:
            nr = _eigenspace_norms(rr.P - 1.0 / K, cor.true)
            for name in levels:
                ratios[name].append(nr[name] / Y0[name])
        return ratios

    data = {
        "N": model.N,
        "mu": model.mu(),
        "a": a,
        "KNlam": K * model.N * cfg["lam"],
        "min_eigenvalue": models.min_eigenvalue(G),
        "counts": cor.counts,
        "true": cor.true,
        "given": cor.given,
        "outputs": {str(r): res.rounds[r].P for r in shown},
        "train_acc": [rr.train_acc for rr in res.rounds],
        "label_signal": Y0,           # norms of the levels of Y - 1/K
        "shrink": {"rounds": rounds, "closed_form": closed,
                   "exact_measured": measured(pure),
                   "exact_measured_jittered": measured(res)},
        "residual": max(max(rr.residual for rr in res.rounds),
                        max(rr.residual for rr in pure.rounds)),
    }
    return write_results(out / "label_averaging.json", "label_averaging", cfg, data)


# --------------------------------------------------------------------------------------------
# pll_vs_sd: training-label accuracy of SD rounds and of the PLL student against eta
# --------------------------------------------------------------------------------------------

def _eta_grid(spec: dict) -> np.ndarray:
    lo, hi = as_float(spec["lo"], "eta lo"), as_float(spec["hi"], "eta hi")
    count = as_int(spec["count"], "eta count", lo=1)
    return np.array(decimal_grid(lo, hi, count))


def compute_pll_vs_sd(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """For each lam and eta: accuracy of rounds 0..R and of the PLL student (group solver).

    The PLL student is trained once per tie rule of ``cfg["pll_ties"]``
    (:func:`sdtheory.distill.pll_targets`): exactly symmetric noise ties a clean sample's
    wrong classes in the teacher's outputs, and the rule decides its second candidate.
    """
    from sdtheory import theory
    from sdtheory.distill import self_distill
    from sdtheory.problem import ProblemConfig, build_problem, solver_of

    R = int(cfg["rounds"])
    etas = _eta_grid(cfg["eta"])
    panels = []
    for lam in cfg["lams"]:
        rows = []
        for eta in etas:
            sim = ProblemConfig(model="block", K=cfg["K"], n=cfg["n"], c=cfg["c"], d=cfg["d"],
                                lam=lam, noise=cfg["noise"], eta=float(eta))
            p = build_problem(sim)
            solver = solver_of(p, "exact")
            rules = list(cfg["pll_ties"])
            res = self_distill(solver, R, pll=True, pll_ties=rules[0])
            students = {rules[0]: res.pll}
            for rule in rules[1:]:       # the teacher again (round 0 only), another tie rule
                students[rule] = self_distill(solver, 0, pll=True, pll_ties=rule).pll
            pll = {rule: st.train_acc for rule, st in students.items()}
            pll_noisy = {rule: st.noisy_acc for rule, st in students.items()}
            pll_strict = {rule: st.train_acc_strict for rule, st in students.items()}
            rows.append({"eta": float(eta), "delta": float(sdtheory.delta(p.corruption.counts)),
                         "sd": [rr.train_acc for rr in res.rounds],
                         "sd_noisy": [rr.noisy_acc for rr in res.rounds],
                         "sd_strict": [rr.train_acc_strict for rr in res.rounds],
                         "pll": pll, "pll_noisy": pll_noisy, "pll_strict": pll_strict})
        panels.append({"lam": float(lam), "rows": rows})
        log(f"lam = {lam:g}: {len(etas)} noise rates done")
    data = {"eta_boundary": theory.eta_boundary(cfg["noise"], cfg["K"]), "panels": panels}
    return write_results(out / "pll_vs_sd.json", "pll_vs_sd", cfg, data)


# --------------------------------------------------------------------------------------------
# min_rounds: r* against eta, closed form vs exact group solver
# --------------------------------------------------------------------------------------------

def _model_for(spec: dict):
    """Block model of one ``[[noise]]`` entry of min_rounds.toml."""
    if spec["model"] == "superclass":
        return sdtheory.three_level(spec["S"], spec["m"], spec["n"], spec["c"], spec["d"],
                                    spec["e"])
    return sdtheory.two_level(spec["K"], spec["n"], spec["c"], spec["d"])


def compute_min_rounds(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """r* per noise rate: theory (closed form at the exact counts) and exact group solver.

    Both are eta x lam sweeps (:func:`sdtheory.jobs.sweep.phase_diagram`): the exact solver on the
    marker grid, the closed form (column ``r_star_closed_form``) on the fine grid of the lines.
    """
    from sdtheory import noise, theory
    from sdtheory.jobs.sweep import Axis, phase_diagram
    from sdtheory.problem import ProblemConfig

    R = int(cfg["max_rounds"])
    lams = [float(v) for v in cfg["lams"]]
    lam_axis = Axis("lam", lams[0], lams[-1], len(lams), log=len(lams) > 1)
    if not np.allclose(lam_axis.values, lams, rtol=1e-12, atol=0):
        raise ValueError("min_rounds: lams must be log-spaced (an axis of the sweep)")
    panels = []
    for spec in cfg["noise"]:
        model = _model_for(spec)
        m = spec.get("m")
        kind = spec["kind"]
        boundary = theory.eta_boundary(kind, model.K, m)
        base = ProblemConfig(model="superclass" if spec["model"] == "superclass" else "block",
                             K=model.K, n=spec["n"], c=spec["c"], d=spec["d"],
                             e=spec.get("e", 0.0), classes_per_superclass=m or 2, noise=kind)

        def axis(grid, spec=spec):
            g = _eta_grid(grid | {"hi": spec["eta_hi"]})
            return Axis("eta", float(g[0]), float(g[-1]), g.size), g

        fine_axis, fine = axis(cfg["eta_fine"])
        lines_res = phase_diagram(base, fine_axis, lam_axis, quantity="r_star", solver="linear",
                                  max_rounds=0)
        ex_axis, etas = axis(cfg["eta"])
        exact = phase_diagram(base, ex_axis, lam_axis, quantity="r_star", solver="exact",
                              max_rounds=R)
        if exact.failed.any():
            raise FigureError(f"min_rounds: {int(exact.failed.sum())} cells failed the exact "
                              "solver's certificate")

        def r_or_none(v):
            return None if np.isnan(v) else int(v)

        closed = lines_res.values["r_star_closed_form"]
        lines = [{"lam": lam, "eta": fine, "r_star_closed": [r_or_none(v) for v in closed[i]]}
                 for i, lam in enumerate(lams)]
        rows = []
        for i, lam in enumerate(lams):
            for j, eta in enumerate(etas):
                T = noise.transition_matrix(kind, model.K, float(eta),
                                            superclass_of=model.superclass_of)
                C = noise.exact_counts(T, model.sizes)
                rows.append({"lam": lam, "eta": float(eta), "counts": C,
                             "delta": float(noise.delta(C)),
                             "r_star_closed": r_or_none(exact.values["r_star_closed_form"][i, j]),
                             "r_star_exact": r_or_none(exact.values["r_star"][i, j])})
        log(f"{spec['label']}: {len(etas)} x {len(lams)} cells")
        panels.append({"label": spec["label"], "kind": kind, "K": model.K, "m": m,
                       "model": spec, "mu": model.mu(), "eta_boundary": boundary,
                       "lines": lines, "rows": rows})
    return write_results(out / "min_rounds.json", "min_rounds", cfg, {"panels": panels})


# --------------------------------------------------------------------------------------------
# Phase diagrams (sdtheory.jobs.sweep): CSV per sweep + JSON sidecar with the figure's config
# --------------------------------------------------------------------------------------------

def _phase_base(cfg: dict):
    """The base :class:`~sdtheory.problem.ProblemConfig` of a phase figure (swept fields
    aside)."""
    from sdtheory.problem import ProblemConfig

    return ProblemConfig(model="block", K=cfg["K"], n=cfg["n"], c=cfg["c"], d=cfg["d"],
                         lam=cfg.get("lam", 1e-5), noise=cfg["noise"], eta=cfg.get("eta", 0.0))


def _phase_sweeps(name: str, cfg: dict, out: Path, log, runs: list[tuple[str, str, int]],
                  extra: dict | None = None):
    """Run a sweep for each (csv name, quantity, R); write the CSVs and the sidecar."""
    from sdtheory import theory
    from sdtheory.jobs.sweep import phase_diagram
    from sdtheory.results import write_phase_csv

    base = _phase_base(cfg)
    csvs = []
    for csv_name, quantity, R in runs:
        res = phase_diagram(base, cfg["x"], cfg["y"], quantity=quantity, solver=cfg["solver"],
                            max_rounds=R, pll_ties=cfg.get("pll_ties", "split"))
        nfail = int(res.failed.sum())
        if nfail:
            raise FigureError(f"{name}: {nfail} cells of {csv_name} failed the exact solver's "
                               "certificate")
        write_phase_csv(res, out / csv_name, rounded=True)
        csvs.append({"file": csv_name, "quantity": quantity, "max_rounds": R})
        log(f"{csv_name}: {res.x.count} x {res.y.count} cells, {quantity}, rounds 0..{R}")
    data = {"csv": csvs, "eta_boundary": theory.eta_boundary(cfg["noise"], cfg["K"]),
            **(extra or {})}
    return write_results(out / f"{name}.json", name, cfg, data)


def compute_phase_eta_lam(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """r* over eta x lam (exact solver), with the closed-form r* column for the level lines."""
    return _phase_sweeps("phase_eta_lam", cfg, out, log,
                         [("phase_eta_lam.csv", "r_star", int(cfg["max_rounds"]))])


def compute_phase_eta_gap(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """r* over eta x d at fixed c (the class gap c - d), exact solver; plus the closed-form r*
    at larger gaps (``gap_reference``), to show that r* hardly changes above the swept range."""
    from sdtheory import noise, theory
    from sdtheory.jobs.sweep import Axis

    y = Axis.parse(cfg["y"])
    c = float(cfg["c"])
    gaps = sorted({round(c - float(v), 12) for v in (y.values.min(), y.values.max())}
                  | {float(g) for g in cfg["gap_reference"]})
    etas = [float(e) for e in cfg["eta_reference"]]
    table = []
    for eta in etas:
        T = noise.transition_matrix(cfg["noise"], cfg["K"], eta)
        C = noise.exact_counts(T, [cfg["n"]] * cfg["K"])
        table.append([theory.r_star_theory(sdtheory.two_level(cfg["K"], cfg["n"], c, c - g), C,
                                           cfg["lam"]) for g in gaps])
    extra = {"r_star_closed_by_gap": {"gap": gaps, "eta": etas, "r_star": table}}
    return _phase_sweeps("phase_eta_gap", cfg, out, log,
                         [("phase_eta_gap.csv", "r_star", int(cfg["max_rounds"]))], extra)


def compute_phase_pll(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """PLL gain over eta x lam for each R: acc(PLL) - best SD accuracy over rounds 0..R."""
    runs = [(f"phase_pll_R{int(R)}.csv", "pll_gain", int(R)) for R in cfg["rounds_R"]]
    return _phase_sweeps("phase_pll", cfg, out, log, runs)


# --------------------------------------------------------------------------------------------
# probe_digits: the paper's linear-probing layout on the bundled pretrained features
# --------------------------------------------------------------------------------------------

def compute_probe_digits(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """``sdtheory probe`` on a bundled dataset with the experiment's settings: the JSON and CSV
    results of the probe command, under the figure's name (docs/theory.md section 13)."""
    from sdtheory import featuredata
    from sdtheory._io import write_json, write_text
    from sdtheory.jobs import probe

    pc = probe.ProbeConfig(
        dataset=cfg["dataset"], feature_map=cfg["feature_map"], noise=tuple(cfg["noise"]),
        rates=tuple(cfg["rates"]), seeds=tuple(cfg["seeds"]), rounds=cfg["rounds"],
        lam=cfg["lam"], engine=cfg["engine"])
    data = featuredata.feature_map(featuredata.load_dataset(pc.dataset), pc.feature_map)
    log(f"{data.source}: N = {data.N}, D = {data.D}, K = {data.K}; "
        f"{len(pc.noise) * len(pc.rates) * len(pc.seeds) * (pc.rounds + 2)} trainings")
    doc = probe.to_doc(probe.run_probe(pc, data))
    doc = {**doc, "figure": "probe_digits", "experiment": jsonable(cfg)}
    write_text(out / "probe_digits.csv", probe_csv_text(doc))
    path = out / "probe_digits.json"
    write_json(path, doc)
    return path


# --------------------------------------------------------------------------------------------
# relation_distillation: plain SD, PLL and relation-guided distillation on a Gaussian mixture
# --------------------------------------------------------------------------------------------

def _relation_runs(cfg: dict, eta: float, seed: int, snr: float, log) -> dict:
    """One noise draw: accuracy on the true training labels of rounds 0..R for plain SD (and
    the PLL student) and for relation-guided rounds with each alpha (exact solver, one solver
    for all of them)."""
    from sdtheory.distill import self_distill
    from sdtheory.jobs.simulate import SimConfig, relation_of
    from sdtheory.problem import build_problem, solver_of

    sim = SimConfig(model="gmm", K=cfg["K"], n=cfg["n"], c=cfg["c"], d=cfg["d"], dim=cfg["dim"],
                    lam=cfg["lam"], noise=cfg["noise"], eta=float(eta), sampled=True, seed=seed,
                    rounds=cfg["rounds"], solvers=("exact",), method="relation",
                    relation_snr=snr, relation_dim=cfg["relation_dim"],
                    relation_k=cfg["relation_k"], relation_tau=cfg["relation_tau"])
    p = build_problem(sim)
    solver = solver_of(p, "exact")
    R, purity = relation_of(p)
    sd = self_distill(solver, sim.rounds, pll=True)
    out = {"sd": [r.train_acc for r in sd.rounds], "pll": sd.pll.train_acc, "relation": {},
           "purity": purity}
    for alpha in cfg["alphas"]:
        rel = self_distill(solver, sim.rounds, label_weight=alpha, relation=R)
        out["relation"][f"{alpha:g}"] = [r.train_acc for r in rel.rounds]
    return out


def compute_relation_distillation(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """Accuracy of plain SD, PLL and relation-guided rounds against eta and against the
    relation view's snr (seeds averaged in the plot)."""
    by_eta = []
    for eta in cfg["etas"]:
        by_eta.append({"eta": float(eta), "seeds": [
            _relation_runs(cfg, eta, int(s), cfg["relation_snr"], log) for s in cfg["seeds"]]})
        log(f"eta = {eta:g} done")
    by_snr = []
    for snr in cfg["snrs"]:
        by_snr.append({"snr": float(snr), "seeds": [
            _relation_runs(cfg, cfg["snr_eta"], int(s), snr, log) for s in cfg["seeds"]]})
        log(f"snr = {snr:g} done")
    return write_results(out / "relation_distillation.json", "relation_distillation", cfg,
                         {"by_eta": by_eta, "by_snr": by_snr})


# --------------------------------------------------------------------------------------------
# optimize_eta: the best lam and label weight per round against eta
# --------------------------------------------------------------------------------------------

def compute_optimize_eta(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """:func:`sdtheory.jobs.optimize.optimize` for every eta of the grid."""
    from dataclasses import asdict

    from sdtheory.jobs.optimize import optimize
    from sdtheory.problem import ProblemConfig, build_problem

    rows = []
    for eta in cfg["etas"]:
        p = build_problem(ProblemConfig(model="block", K=cfg["K"], n=cfg["n"], c=cfg["c"],
                                        d=cfg["d"], noise=cfg["noise"], eta=float(eta)))
        opt = optimize(p.model, p.corruption.counts, cfg["rounds"])
        rows.append({"eta": float(eta), "delta": float(sdtheory.delta(p.corruption.counts)),
                     "optima": [asdict(o) for o in opt]})
        log(f"eta = {eta:g}: best margins " + ", ".join(f"{o.margin:.3f}" for o in opt))
    return write_results(out / "optimize_eta.json", "optimize_eta", cfg, {"rows": rows})


# --------------------------------------------------------------------------------------------
# ridge_sd_proportional: xi* and the gain of ridge SD in the proportional limit
# --------------------------------------------------------------------------------------------

def compute_ridge_sd_proportional(cfg: dict, out: Path, log: Callable[[str], None]) -> Path:
    """:func:`sdtheory.kernel_ridge.ridge_sd_risk` on a log grid of lam for each gamma and
    design (the orthogonal design for gamma <= 1 only), and finite samples at a few lam
    (:func:`sdtheory.kernel_ridge.ridge_sd_agreement`)."""
    from sdtheory.kernel_ridge import DESIGNS, ridge_sd_agreement, ridge_sd_risk

    lams = np.array(decimal_grid(float(cfg["lam_lo"]), float(cfg["lam_hi"]),
                                 int(cfg["lam_count"]), log=True))
    curves = []
    for design in DESIGNS:
        for gamma in cfg["gammas"]:
            if design == "orthogonal" and gamma > 1:
                continue
            res = [ridge_sd_risk(lam, gamma, r2=cfg["r2"], sigma2=cfg["sigma2"], design=design)
                   for lam in lams]
            curves.append({"design": design, "gamma": float(gamma), "lam": lams.tolist(),
                           **{k: [getattr(r, k) for r in res]
                              for k in ("teacher", "student", "cross", "xi_star", "gain")}})
            log(f"{design} gamma = {gamma:g}: {lams.size} values of lam")
    samples = []
    for design in DESIGNS:
        for lam in cfg["sim_lams"]:
            agr = ridge_sd_agreement(design, cfg["sim_n"], cfg["sim_gamma"], lam,
                                     cfg["sim_seeds"], r2=cfg["r2"], sigma2=cfg["sigma2"])
            samples.append({"design": design, "gamma": float(cfg["sim_gamma"]),
                            "lam": float(lam), "mean": agr["mean"], "se": agr["se"],
                            "z": agr["z"]})
            log(f"{design} samples at lam = {lam:g}: xi* {agr['mean']['xi_star']:.4f} "
                f"(closed form {agr['theory'].xi_star:.4f})")
    return write_results(out / "ridge_sd_proportional.json", "ridge_sd_proportional", cfg,
                         {"curves": curves, "samples": samples})


# --------------------------------------------------------------------------------------------
# Registry and runner
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """One figure: name, one-line description, compute step (config -> results file) and plot
    step (results file -> PNG); ``beside``: made in a second process while the others are made
    (:func:`run_figures`)."""

    name: str
    description: str
    compute: Callable[[dict, Path, Callable[[str], None]], Path]
    plot: Callable[[Path, Path], None]
    beside: bool = False


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("approximation",
           "exact (E) vs linearised (L) students at the authors' defaults, rounds 0..r* (the "
           "exact solver's first 100% round): training accuracy on clean / noisy / all samples",
           compute_approximation, plots.plot_approximation),
    Figure("label_averaging",
           "K=3 outputs of every training instance on the simplex (rounds 0, 1, 2, 5, 20) and "
           "the per-eigenspace shrink a_j^(r+1) against the exact outputs (pure block model)",
           compute_label_averaging, plots.plot_label_averaging),
    Figure("pll_vs_sd",
           "training-label accuracy against eta for SD rounds 0-4 (identical rounds merged) and "
           "the PLL student, both tie rules (exact group solver)",
           compute_pll_vs_sd, plots.plot_pll_vs_sd),
    Figure("min_rounds",
           "minimum rounds r* for 100% label correction against eta: closed form (lines) vs "
           "exact group solver (markers), symmetric and superclass noise, several lam",
           compute_min_rounds, plots.plot_min_rounds),
    Figure("phase_eta_lam",
           "phase diagram of r* over noise rate eta x ridge lam (exact solver, rounds 0-60, "
           "binned colours 0, 1, 2, 3-4, 5-8, ...), closed-form r* level lines",
           compute_phase_eta_lam, plots.plot_phase_eta_lam),
    Figure("phase_eta_gap",
           "phase diagram of r* over noise rate eta x class gap c - d in (0, 0.01] (d swept at "
           "fixed c, exact solver), where r* varies",
           compute_phase_eta_gap, plots.plot_phase_eta_gap),
    Figure("phase_pll",
           "where one PLL round beats SD: acc(PLL) - best SD accuracy over rounds 0..R, "
           "R = 1, 2, 4, over eta x lam (white: exactly equal)",
           compute_phase_pll, plots.plot_phase_pll),
    Figure("relation_distillation",
           "plain SD, the PLL student and relation-guided distillation (targets alpha Y + "
           "(1 - alpha) R P, R from a label-free Gaussian-mixture view) on a Gaussian mixture: "
           "accuracy on the true training labels against eta and against the view's snr",
           compute_relation_distillation, plots.plot_relation_distillation),
    Figure("optimize_eta",
           "the ridge lam and label weight alpha that correct every training label with the "
           "largest worst margin (linearised student, JAX gradients), per round, against eta",
           compute_optimize_eta, plots.plot_optimize_eta),
    Figure("ridge_sd_proportional",
           "ridge self-distillation in the proportional limit: the optimal teacher weight xi* "
           "and the gain over the teacher's risk against lam, orthogonal and Gaussian "
           "(Marchenko-Pastur) designs, with finite samples trained by KernelRidgeSD",
           compute_ridge_sd_proportional, plots.plot_ridge_sd_proportional),
    Figure("probe_digits",
           "linear probing on the bundled digits through ImageNet EfficientNet-Lite0 features: "
           "distillation gain (student - teacher test accuracy) against eta per noise type, "
           "and the class-correlation heatmap with its superclass dendrogram",
           compute_probe_digits, plots.plot_probe_digits, beside=True),
]}


def run_figure(name: str, out: Path, *, quick: bool = False,
               log: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """Compute figure ``name`` into ``out`` (results file), then plot it (NAME.png).

    Returns:
      (results path, PNG path).
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    fig = FIGURES[name]
    log = log or (lambda msg: globals()["log"].info("%s: %s", name, msg))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(name, quick=quick)
    where = experiments_dir() / f"{name}.toml"
    try:
        results = fig.compute(cfg, out, log)
    except KeyError as err:            # the config lacks a parameter the figure reads
        raise ValueError(f"{where}: missing key {err.args[0]!r}") from None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None
    png = out / f"{name}.png"
    fig.plot(results, png)
    return results, png


class _Beside:
    """The figures ``names`` made by one ``sdtheory figures`` process in a hidden folder of
    ``out``, started on entry; :meth:`finish` waits for it and moves the files of one figure
    into ``out``. Leaving the block stops the process if it still runs."""

    def __init__(self, names, out: Path, quick: bool):
        # its staging folder lands beside its output folder: inside .beside too
        self.names, self.out, self.quick = list(names), out, quick
        self.home = out / ".beside"
        self.folder = self.home / "figures"
        self.proc, self.started = None, time.perf_counter()

    def __enter__(self):
        if self.names:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home.mkdir(parents=True)
            argv = [sys.executable, "-m", "sdtheory", "--quiet", "figures",
                    "--out", str(self.folder)] + (["--quick"] if self.quick else [])
            for name in self.names:
                argv += ["--only", name]
            with open(self.home / "stderr", "w") as err:
                self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        return self

    def finish(self, name: str) -> None:
        if self.proc.wait():
            lines = (self.home / "stderr").read_text().strip().splitlines()
            raise FigureFailed(name, FigureError(
                f"the process making it beside the others exited with {self.proc.returncode}: "
                f"{lines[-1] if lines else 'no message'}"))
        for p in sorted(self.folder.glob(f"{name}*")):
            os.replace(p, self.out / p.name)

    def __exit__(self, *exc):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.home, ignore_errors=True)


def run_figures(names, out: Path, *, quick: bool = False, final=None, beside=None) -> None:
    """Compute and plot the figures ``names`` into ``out``: one progress step and one line
    each (``final(file name)`` names a written file in that line; default its path in
    ``out``); the jobs inside a figure report nothing of their own.

    With more than one figure to make and more than one CPU, the figures marked ``beside``
    (or those named in ``beside``) are made by a second ``sdtheory figures`` process while this
    one makes the others, one after the other: the probe's solves keep XLA's threads busy,
    the other figures mostly one core (benchmarks/README.md). That process writes into a
    hidden folder of ``out``, its files are moved into ``out`` when it has finished, and it is
    stopped if this process stops first.

    Raises:
      FigureFailed: a figure failed (the files already in ``out`` are the caller's to keep or
        discard).
    """
    from sdtheory._blas import one_blas_thread
    from sdtheory._progress import Progress, quieted
    from sdtheory.solvers import SolverError

    out = Path(out)
    final = final or (lambda n: str(out / n))
    t_all = time.perf_counter()
    progress = Progress(log, total=len(names), what="figure")
    if beside is None:
        beside = [n for n in names if FIGURES[n].beside]
    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1)
    side = [n for n in names if n in beside] if len(names) > 1 and cpus > 1 else []

    def made_since(before):
        return sorted(final(p.name) for p in set(out.iterdir()) - before
                      if not p.name.startswith("."))

    with _Beside(side, out, quick) as others:
        for name in [n for n in names if n not in side] + side:
            t0 = others.started if name in side else time.perf_counter()

            def step(msg, name=name, t0=t0, level=logging.DEBUG):
                log.log(level, "%s %7.1f s  %s", name, time.perf_counter() - t0, msg)

            before = set(out.iterdir()) if out.is_dir() else set()
            if name in side:
                step("made beside the other figures")
                others.finish(name)
            else:
                step("start" + (" (quick)" if quick else ""))
                try:
                    # numpy's idle BLAS threads spun against JAX's, 2-19x slower
                    # (benchmarks/README.md)
                    with one_blas_thread(), quieted("sdtheory.jobs.sweep", "sdtheory.jobs.probe",
                                                    "sdtheory.executors", "sdtheory.distill",
                                                    "sdtheory.solvers"):
                        run_figure(name, out, quick=quick, log=step)
                except (SolverError, FigureError) as err:
                    raise FigureFailed(name, err) from None
            step(f"done -> {', '.join(made_since(before))}", level=logging.INFO)
            progress.step(name)
    log.info("%d figure(s) in %.1f s", len(names), time.perf_counter() - t_all)
