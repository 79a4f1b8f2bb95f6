"""``sdtheory verify``: every statement of the theory as a numerical experiment.

The harness (:mod:`~sdtheory.jobs.verify.harness`) keeps a registry of checks; each check module
covers one part of docs/theory.md (linear form and label averaging, Delta and r*, the PLL
student, gradient training). The package's names are those of the submodules' ``__all__``
(the harness and the shared cases).
"""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__)
