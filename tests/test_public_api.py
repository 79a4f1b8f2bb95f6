"""The public names of ``sdtheory`` are what they promise: each listed name imports, the
modules are modules, every other name is the function or class of that name."""

import inspect

import numpy as np

import sdtheory as sd
from sdtheory import _NAMES

MODULES = {"models", "noise", "metrics", "theory", "solvers", "distill", "population", "sweep",
           "verify", "plots"}


def test_every_public_name_is_what_its_name_promises():
    assert set(sd.__all__) == {"__version__", *_NAMES}
    for name in _NAMES:
        obj = getattr(sd, name)
        if name in MODULES:
            assert inspect.ismodule(obj), name
        else:
            assert not inspect.ismodule(obj) and callable(obj), name
            assert obj.__name__ == name, (name, obj)


def test_simulate_is_the_function():
    """sd.simulate(sd.SimConfig(...)) runs (it was the module: 'module' object is not
    callable). At eta = 0 every label is clean, so the closed-form teacher gets every
    training sample right, and the realised noise rate is 0."""
    with sd.x64():
        doc = sd.simulate(sd.SimConfig(K=3, n=4, eta=0.0, rounds=1, solvers=("linear",)))
    assert doc["realised_noise_rate"] == 0.0
    assert doc["solvers"]["linear"]["rounds"][0]["train_acc"] == 1.0
    assert np.array_equal(np.diag(doc["counts"]), [4, 4, 4])
