"""Test session: float64 on (explicitly, as a user would), headless matplotlib, and JAX's
persistent compilation cache of the ``sdtheory`` command (``$SDTHEORY_JAX_CACHE``, default
~/.cache/sdtheory/jax) from the first test on: the suite's cost is mostly compilation, and a
repeat run (or a test that compiles a program another one already compiled) loads it instead.
The in-process command tests would switch the cache on anyway, so without this the tests before
the first of them (or a file run alone) compiled everything."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from sdtheory._x64 import configure_process  # noqa: E402

configure_process()


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(20240216)


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    """A small three-class feature file (90 training, 30 test samples) for command runs."""
    import numpy as np

    rng = np.random.default_rng(4)
    means = rng.standard_normal((3, 6)) * 2
    y = np.repeat(np.arange(3), 30)
    yt = np.repeat(np.arange(3), 10)
    path = tmp_path_factory.mktemp("f") / "f.npz"
    np.savez(path, X_train=means[y] + 0.7 * rng.standard_normal((90, 6)), y_train=y,
             X_test=means[yt] + 0.7 * rng.standard_normal((30, 6)), y_test=yt)
    return path
