"""Linear probing on real features: the paper's experiment (docs/theory.md section 13).

For every noise type, noise rate and seed the training labels are corrupted (sampled per
class from the noise's transition matrix), then a teacher (round 0), R students (each trained
from scratch on the previous round's softmax outputs) and one PLL student (on the teacher's
top-2 classes) are trained on fixed features, by one of two engines:

* ``closed``: the exact solver of (E) with G = X X^T (training to convergence, CE for every
  student, the PLL student included), in feature space: its unknown is the weights W itself
  (Newton on W^T, docs/theory.md section 2.5), the training outputs are P = softmax(X W^T)
  and the test outputs softmax(X_test W^T) (W = (T - P)^T X / (N lam), section 2.1, holds
  at the solution);
* ``trained``: gradient training by the authors' protocol ``selfpll``: SGD with momentum 0.9,
  lr 0.1 multiplied by 0.98 each epoch, 200 epochs, batch 128, weight decay lam, no bias,
  weights from zero in every round; the PLL student starts from the teacher's weights and
  trains the generalised cross-entropy (q = 0.7) over the teacher's top two classes. The
  weights of the last epoch are used, or, only with ``select_on_test`` (which selects on the
  test set, as the authors' reported numbers do), those of the epoch with the best test
  accuracy.

Each (noise, eta, seed, round or PLL) gives a row: accuracy on the given and on the true
training labels, test accuracy, and the certificate of (E) (``closed``), with the decision
margin of each accuracy (and of the PLL student's top-2 targets) in units of the tie tolerance
of the closed form, 1e-13, and whether one of them is fragile (:mod:`sdtheory.metrics`: it
would change were the tolerance ten times larger or smaller). Beside the measured
rounds, the block statistics (c, d, e) of the features
(:func:`sdtheory.featuredata.block_statistics`) give a two- or three-level model whose theory
r* is reported for each realised corruption.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

from sdtheory import noise
from sdtheory._progress import quieted
from sdtheory._validate import (
    as_int,
    check_choice,
    check_eta,
    check_label_weight,
    check_lam,
    check_positive,
    check_seed,
    set_checked,
)
from sdtheory.executors import check_executor, executor, run_tasks, task
from sdtheory.featuredata import (
    FEATURE_MAPS,
    FeatureData,
    block_statistics,
    class_correlation,
    superclasses_from_features,
)
from sdtheory.relation import METHODS

__all__ = ["ENGINES", "PROTOCOLS", "ProbeConfig", "ProbeResult", "run_probe",
           "theory_model"]

log = logging.getLogger(__name__)

ENGINES = ("closed", "trained")
PROTOCOLS = ("selfpll",)
DEFAULT_RATES = (0.0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_SEEDS = (0, 1, 2)

SELFPLL = {"lr": 0.1, "momentum": 0.9, "epochs": 200, "batch_size": 128, "lr_decay": 0.98,
           "gce_q": 0.7}
"""The authors' linear-probing recipe (protocol ``selfpll``)."""


def _tuple(values, name, check) -> tuple:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        values = (values,)
    out = tuple(check(v) for v in values)
    if not out:
        raise ValueError(f"{name} must list at least one value")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a value twice: {list(out)}")
    return out


@dataclass(frozen=True)
class ProbeConfig:
    """What ``sdtheory probe`` runs (the ``config`` of its results files).

    Attributes:
      features: path of a feature file, or None; dataset: a bundled dataset name, or None
        (exactly one of the two).
      feature_map: raw | standard | l2.
      noise: noise types (each one panel of the figure).
      rates: target noise rates eta in [0, 1); seeds: seeds of the sampled corruption (and of
        SGD's shuffling).
      rounds: R students after the teacher (rounds 0..R).
      lam: ridge / weight decay, in [1e-8, 1e3].
      engine: closed | trained; protocol: selfpll (the trained engine's recipe).
      select_on_test: trained engine only: keep the epoch with the best TEST accuracy (the
        authors' reporting, which selects on the test set); default the last epoch.
      superclass_cut: dendrogram cut of the superclass clustering (fraction of the largest
        linkage distance, as the authors' 0.8).
      epochs: SGD epochs of the trained engine (the protocol's 200 by default).
      method: sd (each student on the previous round's outputs) or relation (on
        alpha Y + (1 - alpha) R P, R the relation matrix of a label-free view: the training
        features themselves or ``relation_features``, :mod:`sdtheory.relation`).
      label_weight: alpha of the targets alpha Y + (1 - alpha) (R) P of rounds >= 1, in [0, 1].
      relation_features: a second feature file whose X_train rows are the same samples (the
        label-free view), or None (the probed features).
      relation_k, relation_tau: neighbours and temperature of the relation matrix.
      executor, workers, scheduler: where the (noise, eta, seed) runs go
        (:func:`sdtheory.executors.executor`); not part of the results' config, which are
        identical for every executor.
    """

    features: str | None = None
    dataset: str | None = None
    feature_map: str = "raw"
    noise: tuple[str, ...] = ("sym", "asym", "superclass")
    rates: tuple[float, ...] = DEFAULT_RATES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    rounds: int = 4
    lam: float = 1e-3
    engine: str = "closed"
    protocol: str = "selfpll"
    select_on_test: bool = False
    superclass_cut: float = 0.8
    epochs: int = SELFPLL["epochs"]
    method: str = "sd"
    label_weight: float = 0.0
    relation_features: str | None = None
    relation_k: int = 10
    relation_tau: float = 0.1
    executor: str = "serial"
    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self):
        if (self.features is None) == (self.dataset is None):
            raise ValueError("give exactly one of --features FILE.npz and --dataset NAME")
        check_choice(self.feature_map, FEATURE_MAPS, "--feature-map")
        set_checked(self, "noise", _tuple, "--noise",
                    lambda v: check_choice(v, noise.KINDS, "--noise"))
        set_checked(self, "rates", _tuple, "--rates", check_eta)
        set_checked(self, "seeds", _tuple, "--seeds", check_seed)
        set_checked(self, "rounds", as_int, "rounds", lo=0, hi=100)
        set_checked(self, "lam", check_lam)
        check_choice(self.engine, ENGINES, "--engine")
        check_choice(self.protocol, PROTOCOLS, "--protocol")
        set_checked(self, "select_on_test", bool)
        if self.select_on_test and self.engine != "trained":
            raise ValueError("--select-best-epoch-on-test applies to --engine trained only")
        set_checked(self, "superclass_cut", check_positive, "superclass-cut")
        set_checked(self, "epochs", as_int, "epochs", lo=1, hi=100_000)
        check_choice(self.method, METHODS, "--method")
        set_checked(self, "label_weight", check_label_weight, softmax=True)
        if self.relation_features is not None and self.method != "relation":
            raise ValueError("--relation-features applies to --method relation only")
        set_checked(self, "relation_k", as_int, "relation k", lo=1)
        set_checked(self, "relation_tau", check_positive, "relation tau")
        check_executor(self.executor, self.workers, self.scheduler)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("executor", "workers", "scheduler"):      # results do not depend on these
            d.pop(k)
        for k in ("noise", "rates", "seeds"):
            d[k] = list(d[k])
        if self.engine == "trained":
            d["selfpll"] = {**SELFPLL, "epochs": self.epochs}
        return d


@dataclass(frozen=True)
class ProbeResult:
    """Rows of a probe run and what describes them.

    Attributes:
      config: the :class:`ProbeConfig` as a dict; version: the package version.
      data: source, feature map, N, M, D, K, class names.
      superclass_of: (K,) the clustering of the classes (used by superclass noise).
      stats: block statistics of the training features (:func:`block_statistics`, without
        the K x K matrix) and the class correlation matrix used for the clustering.
      rows: one dict per (noise, eta, seed, round | "pll") with noise, eta, seed,
        realised_rate, delta, round, acc_given, acc_true, test_acc, certificate,
        decision_margin (per accuracy, and pll_targets for the PLL student; None: no
        tolerance changes it) and fragile.
      r_star: one dict per (noise, eta, seed): the first round 0..R with every training label
        correct (None if none), the theory r* of the fitted block model, and that model.
    """

    config: dict
    version: str
    data: dict
    superclass_of: list
    stats: dict
    rows: list
    r_star: list


def theory_model(stats: dict, sizes, superclass_of, three_level: bool):
    """The block model of the measured statistics (docs/theory.md section 13), or None.

    Two-level: (c, d_all); three-level: (c, d, e) with the clustering, for superclass noise.
    None when the statistics do not make a valid model (e.g. not c > d > e, or not PSD).
    """
    from sdtheory.models import BlockModel

    try:
        if three_level:
            return BlockModel(tuple(int(v) for v in sizes), stats["c"], stats["d"], stats["e"],
                              tuple(int(v) for v in superclass_of))
        return BlockModel(tuple(int(v) for v in sizes), stats["c"], stats["d_all"])
    except (ValueError, KeyError, TypeError):
        return None


THEORY_MAX_ROUNDS = 1000
"""Rounds followed by the theory r* of the fitted block model."""


def _theory_r_star(model, counts, lam) -> int | None:
    """The linearised theory's r* of a block model with any class sizes (docs/theory.md
    section 7): the first round of the closed form (L) with every group correct (equal to the
    closed-form r* of section 7.2 where that applies), None beyond THEORY_MAX_ROUNDS."""
    from sdtheory.solvers import LinearSolver

    return LinearSolver(gram=model, labels=counts, lam=lam).first_perfect_round(THEORY_MAX_ROUNDS)


def _accuracy_margin(P, labels) -> tuple[float, float]:
    """Accuracy against ``labels`` and its decision margin in units of the closed form's tie
    tolerance (:func:`sdtheory.metrics.decision_margins`; inf: no tolerance changes it)."""
    from sdtheory.metrics import accuracy, decision_margins

    labels = np.asarray(labels)
    w = np.ones(labels.size)
    return float(accuracy(P, labels, labels, w).all), decision_margins(P, labels, w)[0]


def _test_accuracy(data, W) -> float:
    """Accuracy of the weights W on the held-out set (softmax outputs,
    :func:`_accuracy_margin`)."""
    return _test_accuracy_margin(data, W)[0]


def _test_accuracy_margin(data, W) -> tuple[float, float]:
    """:func:`_test_accuracy` and its decision margin (:func:`_accuracy_margin`)."""
    from scipy.special import softmax  # here, not at import: the CLI's parser imports this module

    return _accuracy_margin(softmax(data.X_test @ W.T, axis=1), data.y_test)


def _closed_rounds(X, cors, lam, R, label_weight=0.0, relation=None, spectrum=None):
    """Rounds 0..R and the PLL student of every label set ``cors`` by the exact solver, the
    label sets solved as one batch on the shared features (``spectrum``: the preconditioner's
    data of X, shared by the batches): per label set, (outputs, weights, certificate) per
    training; the weights are the feature-space solver's own (P = softmax(X W^T))."""
    from sdtheory.distill import run_rounds
    from sdtheory.models import Features
    from sdtheory.solvers.feature_solver import FeatureSolver

    solver = FeatureSolver(gram=Features(X), labels=cors, lam=lam, spectrum=spectrum)
    res = run_rounds(solver, R, pll=True, keep_outputs=True, label_weight=label_weight,
                     relation=relation)
    fits = [(res.outputs[r], res.fits[r], res.residual[r]) for r in range(R + 1)]
    fits.append((res.pll_outputs, res.pll_fit, res.pll_residual))
    return [[(P[b], fit.x[b].T, float(cert[b])) for P, fit, cert in fits]
            for b in range(len(cors))]


def _trained_rounds(X, cor, lam, R, seed, epochs, monitor, label_weight=0.0, relation=None):
    """Rounds 0..R and the PLL student by the selfpll protocol: (outputs, weights, None)."""
    from sdtheory.distill import next_targets, pll_targets
    from sdtheory.models import Features
    from sdtheory.solvers import TrainedSolver

    opts = {k: SELFPLL[k] for k in ("lr", "momentum", "batch_size", "lr_decay")}
    opts["epochs"] = epochs
    if monitor is not None:
        opts.update(monitor=monitor, keep_best=True)
    solver = TrainedSolver(gram=Features(X), labels=cor, lam=lam, method="sgd", seed=seed,
                           options=opts)
    out = []
    Y = T = solver.targets0()
    for _ in range(R + 1):
        fit = solver.fit(T)
        out.append((fit.P, fit.info.W, None))
        T = next_targets(Y, fit.P, label_weight, relation)
    teacher_W = out[0][1]
    pll = TrainedSolver(gram=Features(X), labels=cor, lam=lam, method="sgd", seed=seed,
                        W0=teacher_W, options={**opts, "loss": "gce", "q": SELFPLL["gce_q"]})
    fit = pll.fit(pll_targets(out[0][0]))
    out.append((fit.P, fit.info.W, None))
    return out


PROBE_BATCH = 8
"""Most (noise, eta, seed) runs of the closed engine solved as one batch, one task
(:func:`_probe_trainings`, :func:`_batches`); a fixed cut, whatever the executor, so that
every executor gives the same last digits. It also bounds one training's JAX call, which an
interrupt waits for (tests/test_faults.py: exit within 10 s of Ctrl-C)."""


def _batch(cfg) -> int:
    """Runs per task: :data:`PROBE_BATCH` for the closed engine, one for the trained."""
    return PROBE_BATCH if cfg.engine == "closed" else 1


def _distinct_runs(cfg, cors: list, combos: list) -> list[int]:
    """For each run, the index of the first run with the same problem: the same given labels
    (closed engine: e.g. every noise type and seed at eta = 0), and the same seed for the
    trained engine, whose SGD order follows the seed."""
    first: dict = {}
    return [first.setdefault((c.given.tobytes(),) + ((s,) if cfg.engine == "trained" else ()),
                             i)
            for i, (c, (_, _, s)) in enumerate(zip(cors, combos))]


def _batches(todo: list[int], combos: list, size: int) -> list[list[int]]:
    """The runs ``todo`` cut into batches of at most ``size``: the noise-free runs, then those
    of each noise type, apart. A batch moves in lock-step, as many CG iterations as its
    slowest run, and the iterations depend mostly on the noise type and whether there is noise
    (on the bundled digits at lam = 1e-5 the teacher takes about 185 of them without noise,
    60 to 125 with symmetric or asymmetric noise, 210 to 250 with superclass noise)."""
    groups: dict = {}
    for i in todo:
        kind, eta, _ = combos[i]
        groups.setdefault(kind if eta > 0 else None, []).append(i)
    return [g[j:j + size] for g in groups.values() for j in range(0, len(g), size)]


@task
def _probe_trainings(cfg, data, relation, cors, seeds, spectrum=None):
    """The trainings (rounds 0..R and the PLL student: (outputs, weights, certificate)) of the
    label sets ``cors`` of :func:`run_probe`. The closed engine solves them as one batch (with
    the preconditioner's ``spectrum`` of the features); the trained engine one after another,
    with SGD seeds ``seeds``. A task of
    :func:`sdtheory.executors.run_tasks`: everything it uses is in its arguments, so any worker
    gives the same result."""
    X = data.X_train
    # the per-round and per-epoch reports of each training would drown the progress
    with quieted("sdtheory.distill", "sdtheory.solvers.trained"):
        if cfg.engine == "closed":
            return _closed_rounds(X, cors, cfg.lam, cfg.rounds, cfg.label_weight, relation,
                                  spectrum)
        monitor = None
        if cfg.select_on_test:
            def monitor(W):
                return _test_accuracy(data, W)
        return [_trained_rounds(X, cor, cfg.lam, cfg.rounds, seed, cfg.epochs, monitor,
                                cfg.label_weight, relation)
                for cor, seed in zip(cors, seeds)]


def _run_rows(cfg, data, superclass_of, stats, lam_model, cor, combo, runs):
    """The rows and the r* entry of one (noise, eta, seed) run from its trainings ``runs``
    ((outputs, weights, certificate) of rounds 0..R and the PLL student)."""
    from sdtheory.distill import pll_target_margin
    from sdtheory.metrics import fragile

    kind, eta, seed = combo
    K = data.K
    dlt = float(noise.delta(cor.counts))
    rows, first = [], None
    for r, (P, W, cert) in enumerate(runs):
        label = "pll" if r == cfg.rounds + 1 else str(r)
        acc_true, m_true = _accuracy_margin(P, cor.true)
        acc_given, m_given = _accuracy_margin(P, cor.given)
        test_acc, m_test = _test_accuracy_margin(data, W)
        margins = {"acc_given": m_given, "acc_true": m_true, "test_acc": m_test}
        if label == "pll":
            # the teacher's top-2 targets, picked with the closed form's tolerance
            margins["pll_targets"] = float(pll_target_margin(runs[0][0]))
        if label != "pll" and first is None and acc_true == 1.0:
            first = r
        rows.append({
            "noise": kind, "eta": eta, "seed": seed, "realised_rate": cor.rate,
            "delta": dlt, "round": label, "acc_given": acc_given,
            "acc_true": acc_true,
            "test_acc": test_acc,
            "certificate": cert,
            "decision_margin": {k: (float(v) if np.isfinite(v) else None)
                                for k, v in margins.items()},
            "fragile": bool(any(fragile(v) for v in margins.values())),
        })
        what = "PLL" if label == "pll" else f"round {label}"
        log.debug("%s eta=%g seed=%d %s: test %.4f", kind, eta, seed, what, rows[-1]["test_acc"])
    model = theory_model(stats, np.bincount(cor.true, minlength=K), superclass_of,
                         kind == "superclass")
    plain = cfg.method == "sd" and cfg.label_weight == 0.0   # the theory's r* is plain SD's
    r_th = (None if model is None or not plain
            else _theory_r_star(model, cor.counts, lam_model))
    return rows, {"noise": kind, "eta": eta, "seed": seed, "measured": first, "theory": r_th,
                  "model": None if model is None else {
                      "c": model.c, "d": model.d, "e": model.e,
                      "levels": 3 if model.e is not None else 2}}


TASK_BASE_BYTES = 110 * 2 ** 20
"""Peak memory of one (noise, eta, seed) run above the process's own, apart from its feature
arrays (calibrated on the probe jobs of benchmarks/bench_memory.py)."""

FEATURE_COPIES = 4
"""Live float64 copies of the training and test features in one run (the mapped features,
their copy on the JAX device, the Newton products, the test logits' operand; calibrated on
the probe jobs of benchmarks/bench_memory.py)."""


RUN_COPIES = 12
"""float64 arrays of N x K or D x K numbers held per run of a batch of the closed engine for
each training (outputs, targets, unknowns and their warm starts, the Newton and CG vectors;
counted from the code, not calibrated)."""


def task_bytes(data: FeatureData, rounds: int = 1, runs: int = 1) -> float:
    """Estimated peak memory of one task of :func:`run_probe` on ``data``, ``runs``
    (noise, eta, seed) runs of ``rounds`` + 1 trainings and a PLL student, above the
    process's own (:data:`~sdtheory._memory.PROCESS_BYTES`)."""
    per_run = 8.0 * RUN_COPIES * (rounds + 2) * (data.N + data.D) * data.K
    # plus the float32 copy of the training features that the exact solver's CG runs on
    return (TASK_BASE_BYTES + 8.0 * FEATURE_COPIES * (data.N + data.X_test.shape[0]) * data.D
            + 4.0 * data.N * data.D + runs * per_run)


def run_probe(cfg: ProbeConfig, data: FeatureData, relation_view=None) -> ProbeResult:
    """Run the configured probe on (already feature-mapped) data; ``relation_view``: the
    training rows of the label-free view of ``method="relation"`` (default: the features)."""
    from sdtheory import __version__

    X, y = data.X_train, data.y_train
    K = data.K
    sizes = np.bincount(y, minlength=K)
    superclass_of = superclasses_from_features(X, y, cut=cfg.superclass_cut)
    stats = block_statistics(X, y, superclass_of)
    lam_model = cfg.lam / stats["g"]          # the block model has unit diagonal (section 13)
    relation, purity = None, None
    if cfg.method == "relation":
        from sdtheory.relation import relation_matrix, relation_purity

        Phi = X if relation_view is None else relation_view
        if Phi.shape[0] != X.shape[0]:
            raise ValueError(f"--relation-features has {Phi.shape[0]} training rows but the "
                             f"probed features have {X.shape[0]}")
        k_used = min(cfg.relation_k, X.shape[0] - 1)     # at most every other sample
        relation = relation_matrix(Phi, k=k_used, tau=cfg.relation_tau)
        purity = relation_purity(relation, y)
        log.info("relation matrix: %d neighbours, tau %g, purity %.3f (mass on the same true "
                 "class)", k_used, cfg.relation_tau, purity)
    combos = [(kind, eta, seed) for kind in cfg.noise for eta in cfg.rates for seed in cfg.seeds]
    cors = [noise.corrupt_sampled(noise.transition_matrix(kind, K, eta,
                                                          superclass_of=superclass_of), y, seed)
            for kind, eta, seed in combos]
    same = _distinct_runs(cfg, cors, combos)
    todo = sorted(set(same))          # each distinct problem once, in the runs' order
    size = _batch(cfg)
    batches = _batches(todo, combos, size)
    spectrum = None
    if cfg.engine == "closed" and len(batches) > 1:
        from sdtheory._blas import one_blas_thread
        from sdtheory.solvers.feature_solver import FeatureSolver

        # once for every batch (a D x D eigendecomposition), on one thread as in a task
        with one_blas_thread():
            spectrum = FeatureSolver.spectrum_of(X, cfg.lam, K)
    with executor(cfg.executor, workers=cfg.workers, scheduler=cfg.scheduler,
                  task_bytes=task_bytes(data, cfg.rounds, min(len(todo), size)),
                  what=f"a probe of {data.N} training and {data.X_test.shape[0]} test samples "
                       f"of {data.D} features") as ex:
        done = run_tasks(ex, _probe_trainings,
                         [(cfg, data, relation, [cors[i] for i in b],
                           [combos[i][2] for i in b], spectrum) for b in batches],
                         labels=["; ".join("{} eta={:g} seed={}".format(*combos[i]) for i in b)
                                 for b in batches],
                         what="(noise, eta, seed) run", logger=log,
                         sizes=[len(b) for b in batches])
    trainings = {i: t for b, d in zip(batches, done) for i, t in zip(b, d)}
    runs = [_run_rows(cfg, data, superclass_of, stats, lam_model, cors[i], combos[i],
                      trainings[same[i]]) for i in range(len(combos))]
    rows = [row for run_rows, _ in runs for row in run_rows]
    r_stars = [r_star for _, r_star in runs]
    return ProbeResult(
        config=cfg.to_dict(), version=__version__,
        data={"source": data.source, "feature_map": data.feature_map, "N": data.N,
              "M": int(data.X_test.shape[0]), "D": data.D, "K": K,
              "class_names": list(data.class_names), "class_sizes": sizes.tolist(),
              # the exact solver's path (docs/theory.md section 2.5; benchmarks/README.md)
              "solver_path": (f"feature space, batches of <= {PROBE_BATCH} runs"
                              if cfg.engine == "closed" else "sgd")},
        superclass_of=superclass_of.tolist(),
        stats={**{k: v for k, v in stats.items() if k != "mean_inner"},
               "lam_model": lam_model, "correlation": class_correlation(X, y).tolist(),
               **({"relation_purity": purity, "relation_k_used": k_used}
                  if purity is not None else {})},
        rows=rows, r_star=r_stars)


def gains(rows: list, rounds: int) -> dict:
    """Distillation gain per (noise, eta): student minus teacher test accuracy, mean and
    standard deviation over seeds, for t = 1..R and the PLL student.

    Returns:
      {noise: {"eta": [...], "t=1": (mean[], std[]), ..., "pll": (mean[], std[])}}.
    """
    out: dict = {}
    by = {}
    for r in rows:
        by[(r["noise"], r["eta"], r["seed"], r["round"])] = r["test_acc"]
    for kind in dict.fromkeys(r["noise"] for r in rows):
        etas = sorted({r["eta"] for r in rows if r["noise"] == kind})
        seeds = sorted({r["seed"] for r in rows if r["noise"] == kind})
        series = {"eta": etas}
        for label in [str(t) for t in range(1, rounds + 1)] + ["pll"]:
            vals = np.array([[by[(kind, eta, s, label)] - by[(kind, eta, s, "0")] for s in seeds]
                             for eta in etas])
            series["pll" if label == "pll" else f"t={label}"] = (
                vals.mean(axis=1).tolist(),
                (vals.std(axis=1, ddof=1) if len(seeds) > 1 else np.zeros(len(etas))).tolist())
        out[kind] = series
    return out


def format_summary(res: ProbeResult) -> str:
    """A readable summary: data, statistics, and per noise and rate the mean test accuracy of
    the teacher, the students and the PLL student, with measured and theory rounds."""
    d, st, cfg = res.data, res.stats, res.config
    lines = [
        f"sdtheory {res.version}  probe {d['source']} ({d['feature_map']} features): N = {d['N']}, "
        f"test {d['M']}, D = {d['D']}, K = {d['K']}; engine {cfg['engine']}, lam = {cfg['lam']:g}"
        + (f"; label weight {cfg['label_weight']:g}" if cfg.get("label_weight") else "")
        + (f"; relation-guided (k = {cfg['relation_k']}, tau = {cfg['relation_tau']:g}, "
           f"purity {st['relation_purity']:.3f})" if cfg.get("method") == "relation" else ""),
        f"block statistics (mean Gram entry / mean squared norm): c = {st['c']:.4f} "
        f"(same class), d = {_f(st.get('d'))} (same superclass), e = {_f(st.get('e'))} "
        f"(across superclasses), d_all = {st['d_all']:.4f}; superclasses "
        f"{res.superclass_of}",
        "",
        " noise        eta  rate   Delta  teacher " + " ".join(
            f"  t={t}  " for t in range(1, cfg["rounds"] + 1)) + "   PLL    r*(meas/theory)",
    ]
    by: dict = {}
    for r in res.rows:
        by.setdefault((r["noise"], r["eta"]), []).append(r)
    rs: dict = {}
    for r in res.r_star:
        rs.setdefault((r["noise"], r["eta"]), []).append(r)
    for (kind, eta), rr in by.items():
        def mean(label, key="test_acc", rr=rr):
            return float(np.mean([r[key] for r in rr if r["round"] == label]))
        cells = " ".join(f"{mean(str(t)):.4f}" for t in range(0, cfg["rounds"] + 1))
        meas = "/".join(_r(v["measured"]) + ":" + _r(v["theory"]) for v in rs[(kind, eta)])
        lines.append(f" {kind:<11} {eta:4.2f} {mean('0', 'realised_rate'):5.3f} "
                     f"{mean('0', 'delta'):6.3f}  {cells}  {mean('pll'):.4f}  {meas}")
    lines.append("")
    lines.append(" (test accuracy, mean over seeds; r*: first round 0..R with every training "
                 "label correct, '-' if none, : the theory r* of the block model)")
    nfrag = sum(bool(r.get("fragile")) for r in res.rows)
    lines.append(f" decision margins (results JSON): {nfrag} of {len(res.rows)} trainings have an "
                 "accuracy that changes were the tie tolerance 10 times larger or smaller")
    return "\n".join(lines)


def _f(v) -> str:
    return "  -   " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _r(v) -> str:
    return "-" if v is None else str(v)


# --------------------------------------------------------------------------------------------
# Results files
# --------------------------------------------------------------------------------------------


def to_doc(res: ProbeResult) -> dict:
    """The JSON results document: everything of :class:`ProbeResult` plus the gains, floats
    written to the precision of :mod:`sdtheory.results` (the config as given)."""
    from sdtheory._io import jsonable
    from sdtheory.results import precision_doc, rounded

    gain = gains(res.rows, res.config["rounds"])
    return {"figure": "probe", "config": jsonable(res.config), "version": res.version,
            "precision": precision_doc(), "data": jsonable(res.data),
            "superclass_of": jsonable(res.superclass_of),
            **rounded(jsonable({"stats": res.stats, "rows": res.rows, "r_star": res.r_star,
                                "gains": gain}))}


