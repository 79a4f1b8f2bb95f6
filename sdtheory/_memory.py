"""Memory estimates, once: what each path of the package holds at its peak, and the check
that refuses a job whose estimate exceeds the memory available, before anything is allocated.

Every estimate is built from the allocations of the path it describes (numbers measured with
benchmarks/bench_memory.py, which prints each command's estimate beside its measured peak).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

__all__ = [
    "MEMORY_FRACTION",
    "PROCESS_BYTES",
    "available_memory",
    "check_memory",
    "dense_bytes",
    "group_exact_bytes",
]


MEMORY_FRACTION = 0.8
"""A job whose estimated memory exceeds this fraction of the available memory is refused."""

PROCESS_BYTES = 360 * 2 ** 20
"""Resident memory of a process that has imported sdtheory and JAX and run a small job (the
smallest job of benchmarks/bench_memory.py); every estimate of a whole process adds it once
per process."""

GROUP_EXACT_COPIES = 16
"""Live (K, K, K) float64 arrays of the group-reduced exact solver on one problem (its units
are the K^2 (true, given) pairs, each with K outputs; calibrated on the exact jobs of
benchmarks/bench_memory.py)."""


def group_exact_bytes(K: int) -> float:
    """Peak memory above :data:`PROCESS_BYTES` of one group-reduced exact solve, K classes."""
    return 8.0 * GROUP_EXACT_COPIES * float(K) ** 3


def dense_bytes(N: int, features: int = 0) -> float:
    """Peak memory above :data:`PROCESS_BYTES` of the dense solvers on N samples: G and the
    solvers' copies of it (padded host copy, device copy, factorisation workspace), plus the
    ``features`` floats of an N x D feature matrix."""
    return 8.0 * (features + 4.0 * float(N) ** 2)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable; else the free
    physical pages; None where neither is known)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2 ** 30:.1f} GiB" if nbytes >= 2 ** 28 else f"{nbytes / 2 ** 20:.0f} MiB"


def check_memory(nbytes: float, what: str) -> None:
    """Refuse (ValueError) a job whose estimated memory ``nbytes`` exceeds
    :data:`MEMORY_FRACTION` of the available memory, before it allocates anything.

    ``what`` names the job and the parameter that sets its size, e.g. "sampling the labels of
    N = 400000000 samples (--n)".
    """
    log.debug("estimated peak memory %d bytes: %s", int(nbytes), what)
    avail = available_memory()
    if avail is not None and nbytes > MEMORY_FRACTION * avail:
        raise ValueError(f"{what} needs about {_gib(nbytes)} of memory, more than "
                         f"{MEMORY_FRACTION:.0%} of the {_gib(avail)} available; reduce the size")
