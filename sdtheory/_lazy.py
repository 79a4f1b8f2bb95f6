"""Lazy package attributes (PEP 562): ``import sdtheory.plots`` must not import JAX.

A package ``__init__`` declares which public name lives in which submodule; the submodule is
imported on first access, so importing one light module (plotting, results files) does not
pull in the solvers.
"""

from __future__ import annotations

import importlib


def attach(package: str, names: dict[str, str]):
    """(__getattr__, __dir__, __all__) for a package whose public ``names`` map to modules.

    Args:
      package: the package's ``__name__``.
      names: public name -> submodule (relative, e.g. ``"solvers.exact"``) that defines it; a
        submodule itself is listed with its own name as the value.
    """

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{names[name]}")
        value = module if names[name].split(".")[-1] == name else getattr(module, name)
        return value

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
