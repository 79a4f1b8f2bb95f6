"""A problem: the model and noise parameters, and what they build (docs/theory.md 5, 6).

Data flow: :class:`ProblemConfig` (validated parameters) -> :func:`build_problem` -> a block
model (or a dense Gram matrix, or features) and a corruption (true and given labels) ->
solvers. ``sdtheory simulate`` adds rounds and solvers (:class:`sdtheory.jobs.simulate.SimConfig`);
sweeps vary the fields of a base configuration cell by cell (:mod:`sdtheory.jobs.sweep`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from sdtheory import models, noise
from sdtheory._memory import PROCESS_BYTES, check_memory, dense_bytes
from sdtheory._validate import (
    as_float,
    as_int,
    check_choice,
    check_eta,
    check_K,
    check_lam,
    check_seed,
    count_matrix,
    set_checked,
)

__all__ = ["MODELS", "ProblemConfig", "Scenario", "build_problem", "gram_of", "load_counts",
           "model_of"]

MODELS = ("block", "superclass", "gmm")


@dataclass(frozen=True)
class ProblemConfig:
    """Model and noise parameters (the ``config`` block of results files).

    Attributes mirror the command-line options; ``counts`` (K x K integers, row = true class,
    column = given label) overrides ``noise``/``eta``. Every field is validated on
    construction (ValueError naming the field and its range).
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

    def __post_init__(self):
        check_choice(self.model, MODELS, "model")
        set_checked(self, "K", check_K)
        set_checked(self, "n", as_int, "n (samples per class)", lo=1)
        for name in ("c", "d", "e"):
            set_checked(self, name, as_float, name)
        m = set_checked(self, "classes_per_superclass", as_int, "classes-per-superclass m", lo=1)
        set_checked(self, "dim", as_int, "dim (feature dimension D)", lo=1)
        jit = set_checked(self, "jitter", as_float, "jitter")
        if jit < 0:
            raise ValueError(f"jitter must be >= 0, got jitter = {jit:g}")
        set_checked(self, "lam", check_lam)
        check_choice(self.noise, noise.KINDS, "noise")
        set_checked(self, "eta", check_eta)
        if self.counts is not None:
            set_checked(self, "counts", _count_rows, self.K)
        set_checked(self, "sampled", bool)
        set_checked(self, "seed", check_seed)
        if self.model == "superclass" and self.K % m:
            raise ValueError(f"K = {self.K} must be a multiple of classes-per-superclass "
                             f"m = {m}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["counts"] = None if self.counts is None else [list(r) for r in self.counts]
        return d


def _count_rows(counts, K: int) -> tuple[tuple[int, ...], ...]:
    """A K x K count matrix (:func:`~sdtheory._validate.count_matrix`) as a tuple of rows."""
    C = count_matrix(counts)
    if C.shape[0] != K:
        raise ValueError(f"the counts matrix is {C.shape[0]} x {C.shape[0]}, but K = {K}; give "
                         f"K = {C.shape[0]}")
    return tuple(tuple(int(v) for v in row) for row in C)


@dataclass(frozen=True)
class Scenario:
    """A configuration built (:func:`build_problem`): model, labels, and (when not a pure block
    model) G / X. (The solvers' Newton problems are another thing:
    :mod:`sdtheory.solvers.problems`.)"""

    config: ProblemConfig
    model: models.BlockModel | None
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
        raise ValueError(f"--counts: {path} is not valid JSON ({err.msg}, line "
                         f"{err.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--counts: {path} is not a text file (JSON, UTF-8 expected)") from None
    except RecursionError:
        raise ValueError(f"--counts: {path} nests lists too deeply (a K x K list of lists "
                         "is expected)") from None
    if isinstance(data, dict) and "counts" in data:
        data = data["counts"]
    if not (isinstance(data, list) and data and all(isinstance(r, list) for r in data)):
        raise ValueError(f"--counts: {path} must hold a K x K list of lists of integers")
    rows = []
    for i, r in enumerate(data):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in r):
            raise ValueError(f"--counts: row {i} of {path} has a non-integer entry")
        if len(r) != len(data):
            raise ValueError(f"--counts: {path} must be K x K: row {i} has {len(r)} entries, "
                             f"there are {len(data)} rows")
        rows.append(tuple(r))
    return tuple(rows)


def model_of(cfg: ProblemConfig) -> models.BlockModel:
    """The block model of a configuration (two-level, or three-level for "superclass")."""
    if cfg.model == "superclass":
        m = cfg.classes_per_superclass
        return models.three_level(cfg.K // m, m, cfg.n, cfg.c, cfg.d, cfg.e)
    return models.two_level(cfg.K, cfg.n, cfg.c, cfg.d)


def dense_estimate(cfg: ProblemConfig, N: int, factor: bool = False) -> tuple[float, str]:
    """(bytes, what) of a process that solves on the dense N x N G: X (N x D), G = X X^T or
    the jittered block model, and the solvers' copies of G
    (:func:`~sdtheory._memory.dense_bytes`); ``factor``: also an N x N factor X X^T = G of a block
    model (the trained solver's features, :func:`~sdtheory.models.feature_factor`)."""
    feats = N * cfg.dim if cfg.model == "gmm" else N * N if factor else 0
    what = (f"the N x D features of N = {N} samples in D = {cfg.dim} dimensions (--dim, "
            "--n, --K)" if feats > 4.0 * N * N else
            f"the dense N x N Gram matrix of N = {N} samples (--n, --K)")
    return PROCESS_BYTES + dense_bytes(N, feats), what


def build_problem(cfg: ProblemConfig) -> Scenario:
    """Model -> labels (-> dense G when jitter or features make the block structure inexact)."""
    model = model_of(cfg)
    K, sizes = model.K, np.asarray(model.sizes)
    N = int(sizes.sum())
    if cfg.sampled and cfg.counts is None:
        # the true labels, the uniform draws, the given labels and the (N, K) comparison
        check_memory(N * (8.0 * 4 + 9.0 * K),
                     f"sampling the labels of N = {N} samples (--n, --K; exact counts, without "
                     "--sampled, need no per-sample arrays)")
    if cfg.counts is not None:
        cor = noise.corruption_from_counts(np.asarray(cfg.counts), sizes=sizes)
    else:
        T = noise.transition_matrix(cfg.noise, K, cfg.eta, superclass_of=model.superclass_of)
        cor = (noise.corrupt_sampled(T, model.labels(), cfg.seed) if cfg.sampled
               else noise.corrupt_exact(T, sizes))
    if cfg.model == "gmm" or cfg.jitter > 0:
        check_memory(*dense_estimate(cfg, N))
    G = X = None
    if cfg.model == "gmm":
        X, y = models.gmm_features(K, cfg.n, cfg.c, cfg.d, cfg.dim, cfg.seed)
        # gmm_features orders samples by class like the corruption does.
        assert np.array_equal(y, cor.true)
        G = X @ X.T
    elif cfg.jitter > 0:
        G = model.dense()
    if cfg.jitter > 0:
        G = models.jitter(G, cfg.jitter, cfg.seed)
    return Scenario(config=cfg, model=model, corruption=cor, G=G, X=X)


def gram_of(p: Scenario):
    """The Gram input of the exact and linearised solvers: the block model itself where the
    group reduction is exact (no jitter, no sampled features), else the dense G."""
    return p.model if p.G is None else p.G


def solver_of(p: Scenario, which: str, gram=None):
    """The solver named ``which`` ("exact", "linear" or "trained") on a built scenario
    (``gram``: another Gram input than :func:`gram_of`, e.g. the dense G of a block model)."""
    from sdtheory.solvers import ExactSolver, LinearSolver, TrainedSolver

    gram = gram_of(p) if gram is None else gram
    cor, lam = p.corruption, p.config.lam
    if which == "exact":
        return ExactSolver(gram=gram, labels=cor, lam=lam)
    if which == "linear":
        return LinearSolver(gram=gram, labels=cor, lam=lam, loss=p.config.loss)
    if which == "trained":
        return TrainedSolver(gram=models.Features(p.X) if p.X is not None else gram, labels=cor,
                             lam=lam)
    raise ValueError(f"unknown solver {which!r}")
