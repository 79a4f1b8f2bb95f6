"""Measured peak memory against the estimate that the memory check uses (run:
``cd benchmarks && python bench_memory.py [--quick] [--only TEXT]``).

Each job runs one ``sdtheory`` command in a fresh child process (JAX's compilation cache off).
Its peak is the larger of the child's own ``ru_maxrss`` (``os.wait4``) and the largest sum of
resident memory over the child and its descendants (Dask workers), sampled from /proc every
20 ms. The estimate is the largest number the command passed to its memory check
(:func:`sdtheory._memory.check_memory`, logged at DEBUG), the number it compares with the
available memory before it allocates. Prints one row per job: the command line, wall time,
measured peak, estimate, and their ratio; the goal is a ratio in [0.5, 2].
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

from _common import machine

# (command line without --out, quick?)
JOBS = [
    ("simulate --K 4 --n 100 --rounds 2", True),
    ("simulate --K 50 --n 1 --rounds 0 --solver exact", True),
    ("simulate --K 100 --n 1 --rounds 0 --solver exact", True),
    ("simulate --K 200 --n 1 --rounds 0 --solver exact", False),
    ("simulate --K 300 --n 1 --rounds 0 --solver exact", False),
    ("simulate --K 1000 --n 10 --rounds 3 --solver linear", True),
    ("simulate --K 4 --n 500 --jitter 0.01 --rounds 2", True),
    ("simulate --K 4 --n 1500 --jitter 0.005 --rounds 0 --solver exact", False),
    ("simulate --K 4 --n 2000 --jitter 0.005 --rounds 0 --solver linear", False),
    ("simulate --K 4 --n 4000 --jitter 0.001 --rounds 0 --solver exact", False),
    ("simulate --model gmm --K 4 --n 500 --dim 50 --rounds 2", True),
    ("simulate --method relation --K 4 --n 1000 --rounds 1 --solver linear", True),
    ("simulate --method relation --K 4 --n 1500 --rounds 1", False),
    ("simulate --K 4 --n 500 --rounds 1 --solver trained", True),
    ("simulate --K 4 --n 1000 --rounds 1 --solver trained", False),
    ("simulate --model gmm --K 4 --n 1000 --dim 50 --rounds 1 --solver trained", False),
    ("optimize --K 300 --n 10 --eta 0.3 --max-rounds 2", True),
    ("phase --x eta:0:0.7:20 --y lam:1e-5:1e-2:10:log --max-rounds 20", True),
    ("phase --x K:99:100:2 --y eta:0:0.7:3 --max-rounds 2", False),
    ("phase --x eta:0:0.7:40 --y lam:1e-5:1e-2:20:log --max-rounds 20 --executor local "
     "--workers 2", True),
    ("phase --x eta:0:0.7:40 --y lam:1e-5:1e-2:20:log --max-rounds 20 --executor local "
     "--workers 4", False),
    ("phase --x eta:0:0.7:40 --y lam:1e-5:1e-2:20:log --max-rounds 20 --executor local "
     "--workers 8", False),
    ("verify --quick", True),
    ("verify --quick --executor local --workers 2", False),
    ("probe --rates 0.2 --seeds 0 --noise sym --rounds 1", True),
    ("probe --features BIG --rates 0.2 --seeds 0 --noise sym --rounds 1", False),
    ("probe --features BIG --rates 0.2 --seeds 0,1 --noise sym --rounds 1 --executor local "
     "--workers 2", False),
    ("verify", False),
]

BIG = (20_000, 4_000, 512, 10)
"""BIG: a feature file of 20,000 training and 4,000 test samples, 512 features, 10 classes
(Gaussian classes, seed 0), written to a temporary folder for the jobs that name it."""


def big_features(folder: str) -> str:
    import numpy as np

    N, M, D, K = BIG
    rng = np.random.default_rng(0)
    mu = 0.3 * rng.standard_normal((K, D))
    y, yt = rng.integers(0, K, N), rng.integers(0, K, M)
    path = os.path.join(folder, "big.npz")
    np.savez(path, X_train=mu[y] + rng.standard_normal((N, D)), y_train=y,
             X_test=mu[yt] + rng.standard_normal((M, D)), y_test=yt)
    return path

# the child: the command, with the memory check's DEBUG line on stderr
CHILD = """
import logging, sys
h = logging.StreamHandler(sys.stderr)
h.setFormatter(logging.Formatter("MEMORY %(message)s"))
lg = logging.getLogger("sdtheory._memory")
lg.setLevel(logging.DEBUG)
lg.addHandler(h)
from sdtheory.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d))
            rss[int(d)] = int(fields[21]) * page
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak bytes, estimated bytes) of ``sdtheory ARGV`` in a child process."""
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", CHILD, "--quiet", *argv, "--out", out],
                                 stdout=subprocess.DEVNULL, stderr=err)
        tree_peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.02):
                tree_peak[0] = max(tree_peak[0], _tree_rss(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        stop.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        err.seek(0)
        text = err.read()
        # verify exits 1 when a check fails (its documented counter-examples): it ran
        if child.returncode != 0 and not (argv[0] == "verify" and child.returncode == 1):
            raise RuntimeError(f"sdtheory {' '.join(argv)}: exit {child.returncode}: "
                               f"{text[-500:]}")
    estimates = [int(m) for m in re.findall(r"^MEMORY estimated peak memory (\d+) bytes", text,
                                            flags=re.M)]
    est = float(max(estimates)) if estimates else float("nan")    # a command with no check
    return wall, max(usage.ru_maxrss * 1024.0, tree_peak[0]), est


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the small jobs")
    ap.add_argument("--only", default=None, metavar="TEXT",
                    help="only the jobs whose command line contains TEXT")
    opts = ap.parse_args()
    print(machine())
    print(f"{'command':<72} {'wall':>7} {'peak':>9} {'estimate':>9} {'ratio':>6}")
    folder = tempfile.mkdtemp()
    big = None
    for line, quick in JOBS:
        if (opts.quick and not quick) or (opts.only and opts.only not in line):
            continue
        if "BIG" in line and big is None:
            big = big_features(folder)
        wall, rss, est = run([big if a == "BIG" else a for a in line.split()])
        print(f"{line:<72} {wall:6.1f}s {rss / 2 ** 30:7.2f}Gi {est / 2 ** 30:7.2f}Gi "
              f"{est / rss:6.2f}", flush=True)


if __name__ == "__main__":
    os.environ["SDTHEORY_JAX_CACHE"] = ""
    main()
