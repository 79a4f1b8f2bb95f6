"""Lazy package attributes (PEP 562): ``import sdtheory.plots`` must not import JAX.

A package ``__init__`` re-exports its submodules' ``__all__``, read from their source (not
imported); a submodule is imported on first access to one of its names, so importing one
light module (plotting, results files) does not pull in the solvers.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
import sys
import types


def attach(package: str, names: dict[str, str] | None = None, *, functions: tuple[str, ...] = ()):
    """(__getattr__, __dir__, __all__) for a package that re-exports names of its submodules.

    Args:
      package: the package's ``__name__``.
      names: public name -> submodule (relative, e.g. ``"solvers.exact"``) that defines it; a
        submodule itself is listed with its own name as the value. Where a submodule defines
        a function of its own name, list it in ``functions``: the name is that function.
        None: every name of every public submodule's ``__all__`` (submodules without one
        export nothing; a name is listed by one submodule only, the one that defines it); a
        name like a submodule (``solvers.newton.newton``) is the object, not the submodule.
      functions: names that are a function defined in the submodule of the same name.
    """
    functions = set(functions)
    if names is None:
        modules = public_submodules(package)
        names = _exported(package, modules)
        functions.update(name for name in names if name in modules)

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
    if functions:
        sys.modules[package].__class__ = _package_class(functions)
    return __getattr__, __dir__, sorted(names)


def public_submodules(package: str) -> tuple[str, ...]:
    """Names of the submodules of ``package`` not starting with an underscore (not imported)."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(sys.modules[package].__path__)
                        if not m.name.startswith("_")))


def module_all(module: str) -> list[str] | None:
    """A module's ``__all__`` read from its source (None where it has none), without
    importing it: a literal list or tuple of names at the module's top level."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    found = _ALL.search(source)
    if found is None:
        return None
    # the names hold no brackets: the literal ends at the first closing one
    value = source[found.end():]
    try:
        return list(ast.literal_eval(value[:value.index(_CLOSING[value[0]]) + 1]))
    except (KeyError, ValueError, SyntaxError):
        raise ImportError(f"{module}.__all__ is not a literal list of names") from None


_ALL = re.compile(r"^__all__ = ", re.M)
_CLOSING = {"[": "]", "(": ")"}


def _exported(package: str, modules: tuple[str, ...]) -> dict[str, str]:
    """Public name -> the submodule (of ``modules``) whose ``__all__`` lists it (one only)."""
    found: dict[str, str] = {}
    for module in modules:
        for name in module_all(f"{package}.{module}") or ():
            if found.setdefault(name, module) != module:
                raise ImportError(f"{package}: {name!r} is listed in the __all__ of both "
                                  f"{found[name]!r} and {module!r} (list it where it is "
                                  "defined)")
    return found


def _package_class(functions: set[str]) -> type:
    class Package(types.ModuleType):
        def __setattr__(self, name, value):
            if name in functions and isinstance(value, types.ModuleType):
                return                 # the import system binding the submodule: keep the function
            super().__setattr__(name, value)

    return Package
