"""The public names of ``sdtheory`` are what they promise: each listed name imports, the
modules are modules, every other name is the function or class of that name; each package
facade is exactly its submodules' ``__all__``, each name the submodule's own object."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import sdtheory as sd
from sdtheory import _NAMES

MODULES = {"models", "noise", "metrics", "theory", "solvers", "distill", "population", "jobs",
           "sweep", "verify", "plots"}

FACADES = ("sdtheory.models", "sdtheory.plots", "sdtheory.solvers", "sdtheory.jobs.sweep",
           "sdtheory.jobs.verify")


def test_every_public_name_is_what_its_name_promises():
    assert set(sd.__all__) == {"__version__", *_NAMES}
    for name in _NAMES:
        obj = getattr(sd, name)
        if name in MODULES:
            assert inspect.ismodule(obj), name
            assert obj is importlib.import_module(f"sdtheory.{_NAMES[name]}")
        else:
            assert not inspect.ismodule(obj) and callable(obj), name
            assert obj.__name__ == name, (name, obj)
            # the object of the module the facade names, which lists it in its __all__
            source = importlib.import_module(f"sdtheory.{_NAMES[name]}")
            assert name in source.__all__, (name, source.__name__)
            assert obj is getattr(source, name), name


def _listed(package: str) -> dict:
    """Public name -> the submodule whose __all__ lists it (every public submodule imported)."""
    listed = {}
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for name in getattr(module, "__all__", ()):
            assert name not in listed, (name, listed.get(name), module.__name__)
            listed[name] = module
    return listed


@pytest.mark.parametrize("package", FACADES)
def test_facade_is_its_submodules_all(package):
    """plots/figures.__all__ listed plot_optimize_eta, plot_probe_digits and
    plot_relation_distillation, and sd.plots raised AttributeError for each: a facade is now
    the union of its submodules' __all__, each name the object of the submodule listing it
    (which defines it, where the object knows its module)."""
    listed = _listed(package)
    facade = importlib.import_module(package)
    assert sorted(facade.__all__) == sorted(listed)
    assert set(dir(facade)) >= set(listed)
    star = {}
    exec(f"from {package} import *", star)
    for name, module in listed.items():
        obj = getattr(module, name)
        assert getattr(facade, name) is obj, (package, name)
        assert star[name] is obj, (package, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__module__ == module.__name__, (name, obj.__module__, module.__name__)


def test_plots_facade_names_of_the_issue():
    from sdtheory.plots import figures

    for name in ("plot_optimize_eta", "plot_probe_digits", "plot_relation_distillation"):
        assert getattr(sd.plots, name) is getattr(figures, name)


def test_function_named_like_its_module_stays_the_function():
    """``newton`` is both a submodule of sdtheory.solvers and its function; importing the
    submodule must not rebind the package's name to the module."""
    import sdtheory.solvers.newton as module  # noqa: F401 (the import binds the submodule)

    assert inspect.isfunction(sd.solvers.newton)
    assert sd.solvers.newton is sys.modules["sdtheory.solvers.newton"].newton


def test_light_facades_do_not_import_jax():
    """A facade imports a submodule on first use only: plots and sweep's CSV reader load no
    JAX."""
    code = ("import sys, sdtheory.plots, sdtheory.solvers, sdtheory.jobs.sweep; "
            "sdtheory.plots.plot_phase; sdtheory.results.read_phase_csv; "
            "print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_simulate_is_the_function():
    """sd.simulate(sd.SimConfig(...)) runs (it was the module: 'module' object is not
    callable). At eta = 0 every label is clean, so the closed-form teacher gets every
    training sample right, and the realised noise rate is 0."""
    with sd.x64():
        doc = sd.simulate(sd.SimConfig(K=3, n=4, eta=0.0, rounds=1, solvers=("linear",)))
    assert doc["realised_noise_rate"] == 0.0
    assert doc["solvers"]["linear"]["rounds"][0]["train_acc"] == 1.0
    assert np.array_equal(np.diag(doc["counts"]), [4, 4, 4])
