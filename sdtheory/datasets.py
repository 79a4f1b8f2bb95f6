"""Bundled datasets of sdtheory: scikit-learn's digits and the features derived from them.

:func:`digits_split` is the one fixed train/test split of the digits, scikit-learn's
``load_digits()`` (1797 8x8 images, a copy of the test set of the UCI "Optical Recognition of
Handwritten Digits" data, E. Alpaydin and C. Kaynak); see ``sdtheory/data/README.md`` for
licences and attribution.
"""

from __future__ import annotations

import numpy as np

__all__ = ["digits_split"]

#: Number of images in ``sklearn.datasets.load_digits()``.
N_DIGITS = 1797


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
