"""Batches of the Newton core sharded over several local devices (sdtheory.solvers.newton).

The test process has one CPU device; a child process started with
XLA_FLAGS=--xla_force_host_platform_device_count=3 has three, so its batches of cells are
padded to a multiple of 3 and split over them (``jax.shard_map``). The same phase diagram must
come out of both: every r* equal, every certificate within the sweep's bound."""

import json
import os
import subprocess
import sys

import numpy as np

from sdtheory.jobs.simulate import ProblemConfig
from sdtheory.jobs.sweep import phase_diagram
from sdtheory.results import CERT_BOUND
from sdtheory.solvers.newton import local_devices

GRID = dict(x="eta:0:0.7:12", y="lam:1e-5:1e-2:5:log", max_rounds=30)

CHILD = """
import json
from sdtheory._x64 import configure_process
configure_process()        # float64 and the compilation cache (a repeat run compiles nothing)
import jax
from sdtheory.solvers import group_solver
from sdtheory.jobs.sweep import phase_diagram
from sdtheory.jobs.simulate import ProblemConfig

devices = []
newton = group_solver.newton
def recording(*args, **kwargs):
    r = newton(*args, **kwargs)
    devices.append([r.devices, int(r.certificate.shape[0]) if kwargs.get("batched") else 1])
    return r
group_solver.newton = recording
res = phase_diagram(ProblemConfig(n=100), **GRID)
print(json.dumps({"local": jax.local_device_count(), "calls": devices,
                  "values": {k: v.ravel().tolist() for k, v in res.values.items()}}))
"""


def test_phase_diagram_sharded_over_three_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=3")
    env.pop("JAX_PLATFORMS", None)
    out = subprocess.run([sys.executable, "-c", f"GRID = {GRID!r}\n" + CHILD], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert local_devices() == 1 and child["local"] == 3
    # every batched solve of the 60 cells (a padded batch of 64, which the core pads to 66 for
    # three devices) ran on the three devices
    assert child["calls"] and all(d == 3 for d, _ in child["calls"])
    assert {b for _, b in child["calls"]} == {64}

    here = phase_diagram(ProblemConfig(n=100), **GRID)
    there = {k: np.array(v, dtype=float).reshape(here.data.shape)
             for k, v in child["values"].items()}
    assert set(there) == set(here.values)
    for name in ("r_star", "r_star_closed_form"):
        np.testing.assert_array_equal(there[name], here.values[name])
    assert np.isfinite(here.data).sum() > 20           # r* defined in most cells
    assert np.nanmax(there["certificate"]) <= CERT_BOUND
    assert np.nanmax(here.values["certificate"]) <= CERT_BOUND
