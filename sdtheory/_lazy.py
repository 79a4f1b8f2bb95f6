"""Lazy package attributes (PEP 562): ``import sdtheory.plots`` must not import JAX.

A package ``__init__`` declares which public name lives in which submodule; the submodule is
imported on first access, so importing one light module (plotting, results files) does not
pull in the solvers.
"""

from __future__ import annotations

import importlib
import sys
import types


def attach(package: str, names: dict[str, str], functions: tuple[str, ...] = ()):
    """(__getattr__, __dir__, __all__) for a package whose public ``names`` map to modules.

    Args:
      package: the package's ``__name__``.
      names: public name -> submodule (relative, e.g. ``"solvers.exact"``) that defines it; a
        submodule itself is listed with its own name as the value. Where a submodule defines
        a function of its own name, list it in ``functions``: the name is that function.
      functions: names that are a function defined in the submodule of the same name.
    """

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{names[name]}")
        own = names[name].split(".")[-1] == name and name not in functions
        return module if own else getattr(module, name)

    def __dir__():
        return sorted(names)

    # a function named like its submodule: the import system binds the submodule to the
    # package's attribute of that name once it is loaded; the package keeps the function
    functions = set(functions)
    if functions:
        sys.modules[package].__class__ = _package_class(functions)
    return __getattr__, __dir__, sorted(names)


def _package_class(functions: set[str]) -> type:
    class Package(types.ModuleType):
        def __setattr__(self, name, value):
            if name in functions and isinstance(value, types.ModuleType):
                return                 # the import system binding the submodule: keep the function
            super().__setattr__(name, value)

    return Package
