"""The Newton core's batches sharded over several devices (run:
XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/bench_sharding.py, and
without XLA_FLAGS for one device).

Exact phase diagrams of r* (K = 4, n = 500, c = .4, d = .1, rounds 0..60), warm (second call
in the process): 75 x 41 and 150 x 100 cells. On a CPU the forced devices are thread pools of
one machine; on several GPUs each device is a card.
"""

import time

from sdtheory._x64 import enable_x64
from sdtheory.jobs.simulate import ProblemConfig
from sdtheory.jobs.sweep import phase_diagram
from sdtheory.solvers.newton import local_devices

GRIDS = (("eta:0:0.74:75", "lam:1e-6:1e-2:41:log"), ("eta:0:0.74:150", "lam:1e-6:1e-2:100:log"))


def main() -> None:
    from _common import machine

    enable_x64()
    base = ProblemConfig(K=4, n=500, c=0.4, d=0.1)
    print(machine())
    for x, y in GRIDS:
        phase_diagram(base, x, y, max_rounds=60)
        t = time.perf_counter()
        phase_diagram(base, x, y, max_rounds=60)
        print(f"{local_devices()} device(s), {x} x {y}: {time.perf_counter() - t:.2f} s warm")


if __name__ == "__main__":
    main()
