"""Label noise: transition matrices, corruption, realised rates, Delta (docs/theory.md
section 6).

A transition matrix T (K x K, rows sum to 1) gives T_kj = probability that a sample of true
class k is given label j. Its eta is a *target* rate: the realised rate of a corruption (the
fraction of samples with given != true, :attr:`Corruption.rate`) differs from it by the
floor rounding of exact-count mode or by sampling noise in sampled mode.

* :func:`transition_matrix` builds the authors' kinds (sym, asym, pairflip, superclass),
  :func:`custom_transition` validates a user's T.
* :func:`exact_counts` / :func:`corrupt_exact`: off-diagonal counts floor(n_k T_kj), the
  diagonal takes the rest (keeps symmetric structures balanced).
* :func:`corrupt_sampled`: i.i.d. given label per sample from a seeded generator.
* :func:`corruption_from_counts`: a user's K x K count matrix (row = true, column = given).
* :func:`delta`, :func:`is_balanced`: the margin Delta and the balance condition (section 6.3),
  vectorised over a leading batch of count matrices.

Superclasses of real data (complete-linkage clustering of the classes) come from
:func:`sdtheory.featuredata.superclasses_from_features`.
"""

from __future__ import annotations

import numpy as np

from sdtheory._validate import (
    check_choice,
    check_counts,
    check_eta,
    check_K,
    check_labels,
    check_sizes,
    count_matrix,
)

__all__ = [
    "KINDS",
    "transition_matrix",
    "custom_transition",
    "Corruption",
    "exact_counts",
    "corrupt_exact",
    "corrupt_sampled",
    "corruption_from_counts",
    "corruption_from_labels",
    "check_counts",
    "delta",
    "is_balanced",
    "check_superclasses_for_noise",
]

KINDS = ("sym", "asym", "pairflip", "superclass")
"""Names accepted by :func:`transition_matrix`."""

# Rows of a transition matrix must sum to 1 within this absolute tolerance.
_ROW_TOL = 1e-12
# floor(n_k T_kj + _FLOOR_TOL): 500 * 0.6 / 3 evaluates to 99.99999999999999 in floating point.
_FLOOR_TOL = 1e-9


def check_superclasses_for_noise(superclass_of) -> np.ndarray:
    """Validate a class -> superclass map for superclass noise (docs/theory.md section 6.1).

    Superclass noise sends eta/(m-1) to each other class of the same superclass (m = its
    number of classes). A superclass of one class (a singleton cluster, which clustering real
    features can produce) has no other class to flip to: its class keeps all its labels
    (T_kk = 1, no off-diagonal mass).

    Args:
      superclass_of: class -> superclass index (length K, entries 0..S-1).

    Returns:
      the map as an int64 array.

    Raises:
      ValueError: for a map that is not 1-D non-negative integers.
    """
    s = np.asarray(superclass_of)
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.integer) or s.min() < 0:
        raise ValueError("superclass_of must be a 1-D sequence of non-negative integer "
                         f"superclass indices, got {superclass_of!r}")
    return s.astype(np.int64)


def transition_matrix(kind: str, K: int, eta: float, *, superclass_of=None) -> np.ndarray:
    """Noise transition matrix T of one of the authors' kinds (docs/theory.md section 6).

    * "sym": T_kk = 1 - eta, T_kj = eta / (K - 1) (eta is the flip rate).
    * "asym" (authors'): T_kk = 1 - eta, T_kj = eta / K for j != k, plus an extra eta / K on
      class (k + 1) mod K.
    * "pairflip": T_kk = 1 - eta, T_{k, (k+1) mod K} = eta.
    * "superclass": T_kk = 1 - eta, eta / (m - 1) to each other class of the same superclass
      (m = size of k's superclass); a class alone in its superclass keeps T_kk = 1.

    Args:
      kind: one of :data:`KINDS`.
      K: number of classes (>= 2).
      eta: target noise rate in [0, 1).
      superclass_of: class -> superclass index (length K), required for "superclass" and
        ignored otherwise.

    Returns:
      (K, K) float64 array with rows summing to 1.
    """
    check_choice(kind, KINDS, "kind")
    K = check_K(K)
    eta = check_eta(eta)
    k = np.arange(K)
    if kind == "sym":
        T = np.full((K, K), eta / (K - 1))
    elif kind == "asym":
        T = np.full((K, K), eta / K)
        T[k, (k + 1) % K] += eta / K
    elif kind == "pairflip":
        T = np.zeros((K, K))
        T[k, (k + 1) % K] = eta
    else:
        if superclass_of is None:
            raise ValueError("superclass noise needs superclass_of (class -> superclass index)")
        if np.size(superclass_of) != K:
            raise ValueError(f"superclass_of must have K = {K} entries, "
                             f"got {np.size(superclass_of)}")
        s = check_superclasses_for_noise(superclass_of)
        same = s[:, None] == s[None, :]
        m = np.bincount(s)[s]
        T = same * (eta / np.maximum(m - 1, 1))[:, None]
        T[k, k] = np.where(m > 1, 1.0 - eta, 1.0)      # a singleton superclass: no flips
        return T
    T[k, k] = 1.0 - eta
    return T


def custom_transition(T) -> np.ndarray:
    """Validate a user's transition matrix.

    Args:
      T: (K, K) array, K >= 2, finite, non-negative, every row summing to 1 within 1e-12.

    Returns:
      T as a new float64 array.
    """
    T = np.array(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"transition matrix T must be square K x K, got shape {T.shape}")
    if T.shape[0] < 2:
        raise ValueError(f"transition matrix T needs K >= 2 classes, got K = {T.shape[0]}")
    if not np.all(np.isfinite(T)):
        raise ValueError("transition matrix T must be finite (it contains NaN or inf)")
    if np.any(T < 0):
        i, j = np.argwhere(T < 0)[0]
        raise ValueError(f"transition matrix T must be non-negative, got T[{i}, {j}] = {T[i, j]}")
    err = np.abs(T.sum(axis=1) - 1.0)
    if np.any(err > _ROW_TOL):
        k = int(np.argmax(err))
        raise ValueError(f"transition matrix T must be row-stochastic (rows sum to 1 within "
                         f"{_ROW_TOL}); row {k} sums to {float(T[k].sum())!r}")
    return T


class Corruption:
    """True and given labels of N training samples.

    Built from a count matrix alone (exact counts, a counts file), the per-sample arrays are
    not stored: they are produced on first access, ordered by true class and then by given
    label, so that block-model solvers, which need only the counts, work at any N. Built from
    per-sample labels (sampled noise, :func:`corruption_from_labels`), the arrays are kept in
    their order.

    Attributes:
      true: (N,) int64 true classes.
      given: (N,) int64 given (possibly noisy) labels.
      counts: (K, K) int64, counts[k, j] = number of samples of true class k given label j.
    """

    __slots__ = ("counts", "_true", "_given")

    def __init__(self, *, counts, true=None, given=None):
        if (true is None) != (given is None):
            raise ValueError("Corruption needs both true and given labels, or neither")
        object.__setattr__(self, "counts", np.asarray(counts, dtype=np.int64))
        object.__setattr__(self, "_true", None if true is None else np.asarray(true))
        object.__setattr__(self, "_given", None if given is None else np.asarray(given))

    def __setattr__(self, name, value):
        raise AttributeError("Corruption is immutable")

    def __reduce__(self):
        # pickled by its constructor's arguments (slots and the immutability above rule out
        # the default, which sets attributes): corruptions travel to Dask workers
        return _corruption, (self.counts, self._true, self._given)

    def _materialise(self) -> None:
        from sdtheory._memory import check_memory

        K, N = self.K, self.N
        check_memory(16 * N, f"the per-sample labels of N = {N} samples")
        true = np.repeat(np.arange(K, dtype=np.int64), self.counts.sum(axis=1))
        given = np.repeat(np.tile(np.arange(K, dtype=np.int64), K), self.counts.reshape(-1))
        object.__setattr__(self, "_true", true)
        object.__setattr__(self, "_given", given)

    @property
    def true(self) -> np.ndarray:
        """(N,) int64 true classes."""
        if self._true is None:
            self._materialise()
        return self._true

    @property
    def given(self) -> np.ndarray:
        """(N,) int64 given labels."""
        if self._given is None:
            self._materialise()
        return self._given

    @property
    def K(self) -> int:
        """Number of classes."""
        return int(self.counts.shape[0])

    @property
    def N(self) -> int:
        """Number of samples."""
        return int(self.counts.sum())

    @property
    def sizes(self) -> np.ndarray:
        """(K,) class sizes n_k (row sums of ``counts``)."""
        return self.counts.sum(axis=1)

    @property
    def rate(self) -> float:
        """Realised noise rate: fraction of samples with given != true."""
        return float(1.0 - np.trace(self.counts) / self.N)

    @property
    def noisy(self) -> np.ndarray:
        """(N,) bool mask of mislabelled samples (given != true)."""
        return self.given != self.true

    @property
    def C(self) -> np.ndarray:
        """(K, K) C_kj = fraction of class k given label j (docs/theory.md section 6.3)."""
        return self.counts / self.sizes[:, None]


def _from_counts(counts: np.ndarray) -> Corruption:
    return Corruption(counts=counts)


def exact_counts(T, sizes) -> np.ndarray:
    """Exact-count corruption: counts[k, j] = floor(n_k T_kj) off the diagonal (section 6.2).

    The diagonal takes the rest, so row k sums to n_k. The floor is taken of
    n_k T_kj + 1e-9, so that products that are integers up to float error (500 * 0.6 / 3)
    are not rounded down.

    Example (K = 4, n = 500, sym, eta = 0.1): every row is [452, 16, 16, 16] up to rotation.

    Args:
      T: (K, K) transition matrix (validated as in :func:`custom_transition`), or a batch
        (..., K, K) of them (sweeps).
      sizes: n (same for every class) or a sequence of K class sizes n_k >= 1; with a batch of
        T, an array broadcasting against (..., K) (e.g. per-cell n of shape (B, 1)).

    Returns:
      (..., K, K) int64 counts, row = true class, column = given label.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.ndim == 2:
        T = custom_transition(T)
        n = check_sizes(sizes, T.shape[0])
    else:
        n = np.asarray(sizes, dtype=np.int64)
    K = T.shape[-1]
    eye = np.eye(K, dtype=bool)
    counts = np.floor(np.asarray(n)[..., :, None] * T + _FLOOR_TOL).astype(np.int64)
    counts[..., eye] = 0
    diag = np.asarray(n) - counts.sum(axis=-1)
    if np.any(diag < 0):  # only possible if T_kk is ~0 and the floors round up
        raise ValueError("exact counts exceed the class size n_k (a transition matrix with "
                         "T_kk ~ 0)")
    counts[..., eye] = np.broadcast_to(diag, counts[..., eye].shape)
    return counts


def corrupt_exact(T, sizes) -> Corruption:
    """Exact-count corruption (:func:`exact_counts`) as labels.

    Samples are ordered by true class (class 0 first, as
    :meth:`~sdtheory.models.block.BlockModel.labels`), and within a class by given label.
    """
    return _from_counts(exact_counts(T, sizes))


def corrupt_sampled(T, true, seed) -> Corruption:
    """Sampled corruption: given_i drawn i.i.d. from row T[true_i] (docs/theory.md section 6.2).

    Args:
      T: (K, K) transition matrix.
      true: (N,) true classes in 0..K-1 (the sample order is kept).
      seed: seed for ``numpy.random.default_rng``; same seed, same labels.

    Returns:
      :class:`Corruption`; its ``rate`` is the realised noise rate.
    """
    T = custom_transition(T)
    K = T.shape[0]
    true = check_labels(true, K=K, name="true labels")
    from sdtheory._memory import check_memory

    check_memory(true.size * (8.0 * 3 + 9.0 * K), f"sampling the labels of N = {true.size} "
                 "samples")
    u = np.random.default_rng(seed).random(true.size)
    cum = np.cumsum(T, axis=1)
    cum = cum / cum[:, -1:]  # last entry exactly 1, so u < 1 never falls past the last class
    given = np.sum(u[:, None] >= cum[true], axis=1).astype(np.int64)
    counts = np.zeros((K, K), dtype=np.int64)
    np.add.at(counts, (true, given), 1)
    return Corruption(true=true, given=given, counts=counts)


def corruption_from_counts(counts, *, sizes=None) -> Corruption:
    """A corruption with a given count matrix (row = true class, column = given label).

    Samples are ordered as in :func:`corrupt_exact`: by true class, then by given label.

    Args:
      counts: (K, K) non-negative integers, K >= 2, every row sum >= 1.
      sizes: optional class sizes (int or K ints); row k must then sum to sizes[k].

    Raises:
      ValueError: for a matrix that is not square, negative or non-integer entries, an empty
        row, or a row whose sum differs from ``sizes`` (naming the row).
    """
    C = count_matrix(counts)
    if sizes is not None:
        C = check_counts(C, check_sizes(sizes, C.shape[0]))
    return _from_counts(C)


def corruption_from_labels(true, given, K: int | None = None) -> Corruption:
    """A corruption from per-sample true and given labels (the sample order is kept).

    Args:
      true, given: (N,) integer labels in 0..K-1.
      K: number of classes (default: 1 + the largest label, at least 2).
    """
    true, given = np.asarray(true), np.asarray(given)
    if K is None:
        K = max(2, int(max(true.max(initial=0), given.max(initial=0))) + 1)
    K = check_K(K)
    true = check_labels(true, true.size, K, "true labels")
    given = check_labels(given, true.size, K, "given labels")
    counts = np.zeros((K, K), dtype=np.int64)
    np.add.at(counts, (true, given), 1)
    return Corruption(true=true, given=given, counts=counts)


def delta(counts):
    """Margin Delta of docs/theory.md section 6.3.

    With C = counts / row sums (C_kj = fraction of class k given label j),

        Delta = min_k ( C_kk - max_{j != k, C_kj > 0} C_kj ),

    where the max over an empty set (a class without mislabelled samples) is 0. For balanced
    counts (:func:`is_balanced`) Delta > 0 is necessary for SD to correct every training label;
    for unbalanced counts it is not (docs/theory.md section 7.3). Symmetric noise:
    Delta = (K-1-K eta)/(K-1) up to the rounding of exact counts.

    Args:
      counts: (K, K) non-negative matrix with positive row sums (counts, or fractions C), or a
        batch (..., K, K) of them (not validated: sweeps pass counts they built).

    Returns:
      a float, or an array over the batch axes.

    Example:
      >>> delta([[452, 16, 16, 16], [16, 452, 16, 16], [16, 16, 452, 16], [16, 16, 16, 452]])
      0.872
    """
    C = np.asarray(counts)
    single = C.ndim == 2
    C = count_matrix(C, integer=False) if single else C.astype(np.float64)
    C = C / C.sum(axis=-1, keepdims=True)
    K = C.shape[-1]
    eye = np.eye(K, dtype=bool)
    off = np.where(eye, 0.0, C)  # entries with C_kj = 0 contribute 0 = the empty-set max
    out = np.min(np.diagonal(C, axis1=-2, axis2=-1) - off.max(axis=-1), axis=-1)
    return float(out) if single else out


def is_balanced(counts):
    """Balanced corruption (section 6.3): every given label appears as often as every class.

    True iff all row sums are equal and every column sum equals the row sums (so the global
    average given label is uniform, y-bar = 1/K). Vectorised over a leading batch like
    :func:`delta`.
    """
    C = np.asarray(counts)
    single = C.ndim == 2
    C = count_matrix(C, integer=False) if single else C.astype(np.float64)
    rows, cols = C.sum(axis=-1), C.sum(axis=-2)
    out = np.all(rows == rows[..., :1], axis=-1) & np.all(cols == rows[..., :1], axis=-1)
    return bool(out) if single else out


def _corruption(counts, true, given) -> Corruption:
    """A :class:`Corruption` from its constructor's arguments (unpickling)."""
    return Corruption(counts=counts, true=true, given=given)
