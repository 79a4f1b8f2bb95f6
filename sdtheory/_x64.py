"""float64 for theory code, switched on explicitly (never as an import side effect).

sdtheory computes in float64: residuals of 1e-10 and agreement to 1e-8 with reference
outputs are meaningless in float32. JAX defaults to float32, and flipping the global
``jax_enable_x64`` flag inside a library module would silently change the behaviour of every
other JAX user in the process. So the flag is set only

* by the ``sdtheory`` command-line entry point (:func:`enable_x64`),
* by ``tests/conftest.py`` for the test session,
* by a user, through :func:`enable_x64` (process-wide) or :func:`x64` (a ``with`` block).

Example:
    >>> import sdtheory
    >>> with sdtheory.x64():
    ...     out = sdtheory.jobs.simulate(...)          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax

__all__ = ["enable_x64", "x64", "x64_enabled", "require_x64"]


def enable_x64() -> None:
    """Switch JAX to 64-bit floats for the rest of the process."""
    jax.config.update("jax_enable_x64", True)


def x64_enabled() -> bool:
    """Whether JAX currently computes in float64."""
    return bool(jax.config.jax_enable_x64)


@contextlib.contextmanager
def x64() -> Iterator[None]:
    """Context manager: float64 inside the block, the previous setting restored after it."""
    with jax.enable_x64(True):
        yield


def require_x64(where: str) -> None:
    """Raise if float64 is off: theory solvers refuse to return float32 answers.

    Args:
      where: name of the calling function, for the message.
    """
    if not x64_enabled():
        raise RuntimeError(
            f"{where} needs float64: call sdtheory.enable_x64() once, or run inside "
            "`with sdtheory.x64():` (the sdtheory command does this itself)."
        )


def configure_process() -> None:
    """float64, and JAX's persistent compilation cache in ``$SDTHEORY_JAX_CACHE`` (default
    ~/.cache/sdtheory/jax; empty turns it off), so that a repeat run skips compilation. Called
    by the ``sdtheory`` command and by every Dask worker that runs a task (never on import).

    The folder is created owner-only (0700): JAX loads and runs what its cache holds, so only
    its owner may write there."""
    import os

    import jax

    enable_x64()
    # whole tracebacks: the command tells a failure inside JAX from one of its own by them
    jax.config.update("jax_traceback_filtering", "off")
    cache = os.environ.get("SDTHEORY_JAX_CACHE",
                           os.path.join(os.path.expanduser("~"), ".cache", "sdtheory", "jax"))
    if cache:
        try:
            os.makedirs(cache, mode=0o700, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", cache)
            # every program, the small ones too (JAX's default skips those under 1 s)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        except OSError:
            return  # an unwritable cache directory only costs compilation time
