"""numpy's BLAS/LAPACK thread pool, held at one thread where it matters (threadpoolctl).

Two measured reasons, on this project's 2-core reference machine (numbers in
benchmarks/README.md, "Numbers behind choices in the code"):

* Speed under contention. With another process keeping both cores busy, np.linalg.eigh on
  OpenBLAS's two spinning threads was 9 to 35 times slower than on one. The feature
  solver's small D x D eigendecompositions therefore run on one thread.
* Reproducible digits. The last digits of LAPACK's symmetric eigensolver depend on the number
  of BLAS threads (np.linalg.eigh at N = 400, 2000, 4000: one thread and two give different
  bits). Dask starts its workers with one BLAS thread, this process has one per core; so every
  task of a sweep (:func:`sdtheory.executors.task`) runs on one BLAS thread on every executor,
  which makes the serial, local and dask executors give the same bytes.

One thread where two were free makes a large eigh about twice as slow, so outside sweep tasks
(simulate, the Python API) numpy keeps its own thread count, except on matrices of order above
:data:`THREADED_LAPACK_MAX` (:func:`lapack_threads`), and in ``sdtheory figures``, whose
figures mix small numpy factorisations with JAX programs: there numpy's idle threads spun
against JAX's, and one thread made the figures 2 to 19 times faster (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits

__all__ = ["THREADED_LAPACK_MAX", "lapack_threads", "one_blas_thread"]

THREADED_LAPACK_MAX = 8192
"""Largest matrix order factorised on numpy's own BLAS thread count. The bundled OpenBLAS
0.3.31 segfaulted in a two-thread Cholesky at order 16000 and not on one thread
(benchmarks/README.md); above this order LAPACK runs on one thread."""


def one_blas_thread() -> threadpool_limits:
    """A context in which numpy's BLAS/LAPACK runs on one thread (restored afterwards), and
    scipy's, which JAX's LAPACK calls on the CPU (Cholesky, eigh) run on."""
    # loaded now, or the limit misses it: a library loaded inside the block keeps its threads
    import scipy.linalg  # noqa: F401

    return threadpool_limits(limits=1, user_api="blas")


def lapack_threads(order: int):
    """The BLAS thread setting for a LAPACK factorisation of an ``order`` x ``order`` matrix:
    numpy's own up to :data:`THREADED_LAPACK_MAX`, one thread above (a crash, not speed)."""
    return one_blas_thread() if order > THREADED_LAPACK_MAX else contextlib.nullcontext()
