"""Measured peak memory against the estimate that the memory check uses (run:
``cd benchmarks && python bench_memory.py [--quick]``).

Each job runs ``sdtheory simulate`` in a fresh child process (JAX's compilation cache off);
its peak resident set size is the ``ru_maxrss`` of that child alone (``os.wait4``). The
estimate is :func:`sdtheory.simulate.memory_estimate` of the same configuration, the number
that ``simulate`` checks against the available memory. Prints one row per job: the command
line, wall time, measured peak, estimate, and their ratio; the goal is a ratio in [0.5, 2].
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import machine

# (simulate arguments, quick?)
JOBS = [
    ("--K 4 --n 100 --rounds 2", True),
    ("--K 50 --n 1 --rounds 0 --solver exact", True),
    ("--K 100 --n 1 --rounds 0 --solver exact", True),
    ("--K 200 --n 1 --rounds 0 --solver exact", False),
    ("--K 300 --n 1 --rounds 0 --solver exact", False),
    ("--K 1000 --n 10 --rounds 3 --solver linear", True),
    ("--K 4 --n 500 --jitter 0.01 --rounds 2", True),
    ("--K 4 --n 1500 --jitter 0.005 --rounds 0 --solver exact", False),
    ("--K 4 --n 2000 --jitter 0.005 --rounds 0 --solver linear", False),
    ("--model gmm --K 4 --n 500 --dim 50 --rounds 2", True),
    ("--method relation --K 4 --n 1000 --rounds 1 --solver linear", True),
    ("--method relation --K 4 --n 1500 --rounds 1", False),
    ("--model gmm --K 4 --n 1000 --dim 50 --rounds 1 --solver trained", False),
]


def estimate(argv: list[str]) -> float:
    """The simulate command's own estimate for these arguments (parsed as the command does)."""
    from sdtheory.cli import build_parser
    from sdtheory.cli.simulate import sim_config
    from sdtheory.simulate import memory_estimate

    args = build_parser().parse_args(["simulate", *argv])
    return memory_estimate(sim_config(args))[0]


def peak(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in bytes) of ``sdtheory simulate ARGV`` in a child process."""
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "sdtheory", "--quiet", "simulate", *argv,
                                  "--out", out], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        if child.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"simulate {' '.join(argv)}: exit {child.returncode}: "
                               f"{err.read()[-500:]}")
    return wall, usage.ru_maxrss * 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the small jobs")
    opts = ap.parse_args()
    print(machine())
    print(f"{'simulate arguments':<62} {'wall':>7} {'peak':>9} {'estimate':>9} {'ratio':>6}")
    for line in (j for j, quick in JOBS if quick or not opts.quick):
        argv = line.split()
        est = estimate(argv)
        wall, rss = peak(argv)
        print(f"{line:<62} {wall:6.1f}s {rss / 2 ** 30:7.2f}Gi {est / 2 ** 30:7.2f}Gi "
              f"{est / rss:6.2f}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("SDTHEORY_JAX_CACHE", "")
    main()
