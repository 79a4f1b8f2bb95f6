"""Test session: float64 on (explicitly, as a user would), headless matplotlib."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from sdtheory import enable_x64  # noqa: E402

enable_x64()


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(20240216)
