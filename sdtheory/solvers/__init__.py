"""Solvers of one training: exact (the Newton core; one solver per structure of the Gram
matrix, picked by :class:`~sdtheory.solvers.exact.ExactSolver`), linearised (the averaging
operator), gradient-trained (optax). All share :class:`~sdtheory.solvers.base.Solver`:
keyword-only ``gram=``, ``labels=``, ``lam=`` and batch-native ``fit_batch``. The package's
names are those of the submodules' ``__all__`` (``newton`` is
:func:`sdtheory.solvers.newton.newton`)."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__)
