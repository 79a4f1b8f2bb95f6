"""Real feature data for linear probing (docs/theory.md sections 6.4 and 13): loading,
validation, the bundled datasets, feature maps, the block statistics that tie real data to
the Gram models, and the clustering of classes into superclasses.

A feature file is an ``.npz`` (``numpy.savez``) holding ``X_train`` (N x D), ``y_train`` (N,),
``X_test`` (M x D), ``y_test`` (M,) and optionally ``class_names`` (K,). Labels are integers
0..K-1 with K = 1 + the largest training label, and every class has a training sample.
:func:`load_features` checks all of that and names the array at fault; the bundled datasets
(:func:`load_dataset`) need no download. The digits are split once, by :func:`digits_split`
(scikit-learn's ``load_digits()``: 1797 8x8 images, a copy of the test set of the UCI "Optical
Recognition of Handwritten Digits" data, E. Alpaydin and C. Kaynak; see
``sdtheory/data/README.md`` for licences and attribution).

Example:
  >>> from sdtheory.featuredata import load_dataset, feature_map
  >>> data = feature_map(load_dataset("digits"), "l2")
  >>> data.X_train.shape, data.K
  ((1257, 64), 10)
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sdtheory._validate import (
    check_choice,
    check_classes,
    check_features,
    check_labels,
    check_positive,
)

__all__ = [
    "FeatureData",
    "FEATURE_MAPS",
    "DATASETS",
    "make_feature_data",
    "load_features",
    "load_dataset",
    "digits_split",
    "feature_map",
    "block_statistics",
    "class_correlation",
    "superclass_linkage",
    "superclasses_from_features",
]

FEATURE_MAPS = ("raw", "standard", "l2")
"""raw: as stored (the authors' linear probing uses raw, uncentred features); standard: each
column centred and scaled to unit variance with the training statistics; l2: each row scaled
to unit Euclidean norm."""

FEATURE_MAX = 1e50
"""Largest feature magnitude accepted: the solvers form class sums of inner products (up to
N^2 D products x_i x_j) and square them again (eigensolvers, norms), so the fourth power
(1e200) times (N^2 D)^2 must stay below float64's 1.8e308 for any feasible N and D."""

_DATA = Path(__file__).resolve().parent / "data"

DATASETS = {
    "digits": "scikit-learn's load_digits: 8 x 8 grey images as 64 raw pixel values 0..16, "
              "1257 train / 540 test (fixed stratified split)",
    "digits-efficientnet-lite0": "the same images through an ImageNet-pretrained "
                                 "EfficientNet-Lite0: 1280-d pooled features "
                                 "(sdtheory/data/README.md)",
}
"""Bundled datasets, all offline: name -> description."""

_REQUIRED = ("X_train", "y_train", "X_test", "y_test")


@dataclass(frozen=True, eq=False)
class FeatureData:
    """Training and test features with their (clean) labels.

    Attributes:
      X_train: (N, D) float64; y_train: (N,) int64 in 0..K-1, every class present.
      X_test: (M, D) float64; y_test: (M,) int64 in 0..K-1.
      class_names: K names.
      source: the file or bundled dataset it came from.
      feature_map: the map applied (:data:`FEATURE_MAPS`).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    feature_map: str = "raw"

    @property
    def K(self) -> int:
        return len(self.class_names)

    @property
    def N(self) -> int:
        return self.X_train.shape[0]

    @property
    def D(self) -> int:
        return self.X_train.shape[1]


def _features(X, name: str) -> np.ndarray:
    X = check_features(X, name)
    big = np.abs(X) > FEATURE_MAX
    if big.any():
        i, j = np.argwhere(big)[0]
        raise ValueError(f"{name} must have entries of magnitude <= {FEATURE_MAX:g} (their "
                         f"Gram matrix would overflow float64), got {X[i, j]:.3g} at row {i}, "
                         f"column {j}; rescale the features")
    return X


def make_feature_data(X_train, y_train, X_test, y_test, class_names=None,
                      source: str = "arrays") -> FeatureData:
    """Validated :class:`FeatureData` from arrays (the checks of :func:`load_features`)."""
    Xtr = _features(X_train, "X_train")
    Xte = _features(X_test, "X_test")
    if Xte.shape[1] != Xtr.shape[1]:
        raise ValueError(f"X_test has {Xte.shape[1]} features (columns) but X_train has "
                         f"{Xtr.shape[1]}")
    ytr = check_labels(y_train, name="y_train")
    if ytr.shape[0] != Xtr.shape[0]:
        raise ValueError(f"y_train has {ytr.shape[0]} labels but X_train has {Xtr.shape[0]} rows")
    K = check_classes(ytr, "y_train").size
    yte = check_labels(y_test, K=K, name="y_test")
    if yte.shape[0] != Xte.shape[0]:
        raise ValueError(f"y_test has {yte.shape[0]} labels but X_test has {Xte.shape[0]} rows")
    if class_names is None:
        names = tuple(str(k) for k in range(K))
    else:
        names = tuple(str(v) for v in np.asarray(class_names).reshape(-1).tolist())
        if len(names) != K:
            raise ValueError(f"class_names has {len(names)} entries but y_train has K = {K} "
                             "classes")
    return FeatureData(Xtr, ytr, Xte, yte, names, source)


def load_features(path) -> FeatureData:
    """Load and validate a feature file (see the module docstring for the format).

    Raises:
      ValueError: one line naming the file or the array at fault: not a readable ``.npz``, a
        missing array, a non-finite feature, labels that are not integers 0..K-1, a class
        absent from the training set, train and test of different feature dimensions.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"--features {path!r} does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"--features {path!r} is not an .npz file (write it with numpy.savez "
                         "with arrays X_train, y_train, X_test, y_test)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _REQUIRED if k not in f.files]
            if missing:
                raise ValueError(f"--features {path!r} lacks the array {missing[0]!r} (it needs "
                                 f"{', '.join(_REQUIRED)}; it has {', '.join(f.files) or 'none'})")
            arrays = {k: f[k] for k in _REQUIRED}
            names = f["class_names"] if "class_names" in f.files else None
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"--features {path!r} cannot be read as .npz: {err}") from None
    except ValueError as err:
        if str(err).startswith("--features"):
            raise
        raise ValueError(f"--features {path!r} cannot be read as .npz: {err}") from None
    try:
        return make_feature_data(*(arrays[k] for k in _REQUIRED), class_names=names,
                                 source=path)
    except ValueError as err:
        raise ValueError(f"--features {path!r}: {err}") from None


def load_dataset(name: str) -> FeatureData:
    """A bundled dataset (:data:`DATASETS`), read from the installed package (no download)."""
    check_choice(name, DATASETS, "--dataset")
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        tr, te = digits_split()
        return make_feature_data(digits.data[tr], digits.target[tr], digits.data[te],
                                 digits.target[te], class_names=[str(k) for k in range(10)],
                                 source="digits")
    data = load_features(_DATA / "digits_efficientnet_lite0.npz")
    return replace(data, source=name)


N_DIGITS = 1797
"""Number of images in ``sklearn.datasets.load_digits()``."""


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """The one train/test split of the digits used everywhere in sdtheory.

    ``sklearn.model_selection.train_test_split(arange(1797), test_size=0.3, random_state=0,
    stratify=load_digits().target)``: 1257 training and 540 test images, every class in the same
    proportion in both parts.

    Returns:
      (train_idx, test_idx): int64 indices into ``load_digits()``, each sorted ascending.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    if target.shape != (N_DIGITS,):
        raise RuntimeError(f"load_digits() has {target.shape[0]} images, expected {N_DIGITS}")
    train, test = train_test_split(
        np.arange(N_DIGITS), test_size=0.3, random_state=0, stratify=target
    )
    return np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)


def feature_map(data: FeatureData, kind: str) -> FeatureData:
    """Apply a feature map (:data:`FEATURE_MAPS`) to train and test features alike.

    ``standard`` uses the training mean and standard deviation (columns constant on the
    training set are only centred); ``l2`` refuses a zero row (its direction is undefined).
    """
    check_choice(kind, FEATURE_MAPS, "--feature-map")
    Xtr, Xte = data.X_train, data.X_test
    if kind == "standard":
        mu = Xtr.mean(axis=0)
        sd = Xtr.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    elif kind == "l2":
        out = []
        for X, name in ((Xtr, "X_train"), (Xte, "X_test")):
            norms = np.linalg.norm(X, axis=1)
            if np.any(norms == 0):
                row = int(np.flatnonzero(norms == 0)[0])
                raise ValueError(f"--feature-map l2: {name} row {row} is zero and has no "
                                 "direction")
            out.append(X / norms[:, None])
        Xtr, Xte = out
    return replace(data, X_train=Xtr, X_test=Xte, feature_map=kind)


def block_statistics(X, y, superclass_of=None) -> dict:
    """Mean Gram entries of real features by block, in units of the mean diagonal entry.

    With g = mean_i ||x_i||^2, the two- and three-level models' parameters measured on G = X X^T
    (docs/theory.md sections 5 and 13):

    * c = mean of x_i . x_j / g over pairs i != j of the same class;
    * d = over pairs of different classes in the same superclass (NaN if every superclass is
      a single class);
    * e = over pairs in different superclasses (NaN with a single superclass).
    * d_all: over all pairs of different classes (the two-level model's d).

    Pairs are averaged uniformly (sums of class-sum inner products), so large classes weigh
    more, as in G itself.

    Args:
      X: (N, D) features; y: (N,) labels 0..K-1, every class present.
      superclass_of: optional (K,) class -> superclass map.

    Returns:
      dict with c, d, e, d_all, g and the class-level matrix ``mean_inner`` (K x K) of mean
      x_i . x_j / g (diagonal: over i != j).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    K = int(y.max()) + 1
    n = np.bincount(y, minlength=K).astype(np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    g = float(sq.mean())
    S = np.zeros((K, X.shape[1]))
    np.add.at(S, y, X)
    pair_sum = S @ S.T                                     # sum over i in k, j in l of x_i.x_j
    own = np.bincount(y, weights=sq, minlength=K)
    pairs = np.outer(n, n)
    np.fill_diagonal(pair_sum, np.diag(pair_sum) - own)    # drop i = j
    np.fill_diagonal(pairs, n * (n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_inner = pair_sum / pairs / g

    def mean_over(mask):
        total = pairs[mask].sum()
        return float(pair_sum[mask].sum() / total / g) if total > 0 else float("nan")

    eye = np.eye(K, dtype=bool)
    out = {"g": g, "c": mean_over(eye), "d_all": mean_over(~eye), "mean_inner": mean_inner}
    if superclass_of is not None:
        s = np.asarray(superclass_of)
        same = s[:, None] == s[None, :]
        out["d"] = mean_over(same & ~eye)
        out["e"] = mean_over(~same)
    return out


def class_correlation(X, y) -> np.ndarray:
    """Class-mean cosine correlation of features (docs/theory.md section 6.4).

    Centre the features (subtract the mean over samples), L2-normalise each row, and average
    the inner products over classes: M_kl = mean_{i in k, j in l} <z_i, z_j>.

    Args:
      X: (N, D) finite features.
      y: (N,) class labels 0..K-1, every class present, K >= 2.

    Returns:
      (K, K) symmetric M.
    """
    from sdtheory.models.features import preprocess_features

    Z = preprocess_features(X, center=True, normalize=True)
    y = check_labels(y, Z.shape[0], name="y")
    sizes = check_classes(y, "y")
    K = sizes.size
    means = np.zeros((K, Z.shape[1]))
    np.add.at(means, y, Z)
    means /= sizes[:, None]
    return means @ means.T


def superclass_linkage(M) -> np.ndarray:
    """Complete-linkage dendrogram of classes on the distance 1 - M (zero diagonal,
    symmetrised, clipped at 0): scipy's (K - 1, 4) linkage matrix."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    M = np.asarray(M, dtype=np.float64)
    dist = 1.0 - M
    dist = np.clip((dist + dist.T) / 2.0, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return linkage(squareform(dist, checks=False), method="complete")


def superclasses_from_features(X, y, *, cut: float = 0.8) -> np.ndarray:
    """Superclasses of real data by complete-linkage clustering (docs/theory.md section 6.4).

    The class correlation M of :func:`class_correlation`, clustered by
    :func:`superclass_linkage`, and the dendrogram cut at ``cut`` x the largest linkage
    distance (the authors' rule, cut 0.8).

    Args:
      X: (N, D) finite features.
      y: (N,) class labels 0..K-1, every class present, K >= 2.
      cut: fraction of the largest linkage distance at which to cut (> 0; >= 1 gives one
        superclass).

    Returns:
      (K,) int64 class -> superclass index, 0-based and numbered in order of first class
      (class 0 is in superclass 0). A class may be alone in its superclass.
    """
    from scipy.cluster.hierarchy import fcluster

    cut = check_positive(cut, "cut")
    link = superclass_linkage(class_correlation(X, y))
    labels = fcluster(link, cut * link[:, 2].max(), criterion="distance")
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # cluster id -> order of its first class
    return rank[inv].astype(np.int64)


