"""Helpers shared by the benchmark scripts: machine description and timing a command in a
fresh process (``cold``), with JAX's persistent compilation cache empty or filled."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time


def machine() -> str:
    """One line: CPU count, CPU model, load average, Python, JAX."""
    import jax

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    one, five, fifteen = os.getloadavg()
    return (f"{os.cpu_count()} CPUs ({model}), load average {one:.2f} {five:.2f} {fifteen:.2f}; "
            f"Python {platform.python_version()}, jax {jax.__version__} on "
            f"{jax.default_backend()}")


def cold(argv: list[str], repeats: int = 2) -> list[float]:
    """Wall times of ``python -m sdtheory ARGV`` in fresh processes: the first with an empty
    compilation cache, the others with the cache the first one filled."""
    times = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, SDTHEORY_JAX_CACHE=cache)
        for _ in range(repeats):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "sdtheory", "--quiet", *argv], env=env,
                               capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            if r.returncode not in (0, 1):
                raise RuntimeError(f"sdtheory {' '.join(argv)} failed: {r.stderr.strip()}")
    return times
