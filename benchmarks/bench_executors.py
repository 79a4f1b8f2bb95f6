"""Executors on this machine (run: python benchmarks/bench_executors.py).

Serial against an embedded Dask LocalCluster (--executor local) for:

1. `sdtheory verify`, full grids (16 checks, one task each);
2. a `probe` trained sweep (authors' SGD protocol, bundled digits pixels, 2 noise types x
   3 rates x 2 seeds = 12 tasks of 4 trainings, 60 epochs);
3. an exact phase diagram of 300 x 300 cells (tasks of 4,096 cells, the same on every executor);
4. the overhead per task: 200 trivial tasks through each executor.

Each job is a fresh `python -m sdtheory` process (imports, cluster start and JIT compilation
included; the compilation cache filled by a first run).
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import machine

JOBS = {
    "verify (full, 16 checks)": ["verify"],
    "probe trained sweep (12 tasks)": [
        "probe", "--dataset", "digits", "--feature-map", "standard", "--lam", "1e-2",
        "--engine", "trained", "--epochs", "60", "--noise", "sym,asym", "--rates",
        "0.2,0.4,0.6", "--seeds", "0,1", "--rounds", "2", "--out", "/tmp/bench_exec_probe"],
    "phase 300 x 300 exact": [
        "phase", "--x", "eta:0:0.74:300", "--y", "lam:1e-6:1e-2:300:log", "--max-rounds", "60",
        "--out", "/tmp/bench_exec_phase"],
}


def timed(args) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sdtheory", "--quiet", *args], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def overhead(kind: str, n: int = 200) -> float:
    from sdtheory.executors import executor, run_tasks

    with executor(kind) as ex:
        run_tasks(ex, abs, [(1,)] * 10)                      # warm up the workers
        t = time.perf_counter()
        run_tasks(ex, abs, [(i,) for i in range(n)])
        return (time.perf_counter() - t) / n


def main() -> None:
    print(f"machine: {machine()}")
    for name, args in JOBS.items():
        timed(args)                                          # fill the compilation cache
        s = timed(args)
        loc = timed([*args, "--executor", "local", "--workers", "2"])
        print(f"  {name:32s} serial {s:6.1f} s   local (2 workers) {loc:6.1f} s")
    for kind in ("serial", "local"):
        print(f"  overhead per task, {kind:6s}: {1e3 * overhead(kind):.2f} ms")
    print(f"after: {machine()}")


if __name__ == "__main__":
    main()
