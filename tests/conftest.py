"""Test session: float64 on (explicitly, as a user would), headless matplotlib."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from sdtheory import enable_x64  # noqa: E402

enable_x64()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a large case (a small case of it is in the fast set)")


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
