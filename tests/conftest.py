"""Test session: float64 on (explicitly, as a user would), headless matplotlib, and JAX's
persistent compilation cache of the ``sdtheory`` command (``$SDTHEORY_JAX_CACHE``, default
~/.cache/sdtheory/jax) from the first test on: the suite's cost is mostly compilation, and a
repeat run (or a test that compiles a program another one already compiled) loads it instead.
The in-process command tests would switch the cache on anyway, so without this the tests before
the first of them (or a file run alone) compiled everything."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from sdtheory._x64 import configure_process  # noqa: E402

configure_process()

# The plain ``pytest`` runs on every CPU (pytest-xdist: addopts ``-n auto`` in pyproject.toml).
# Each worker compiles into a cache folder of its own: JAX's documentation describes one
# process writing a cache folder, and JAX (0.10) writes an entry in place, unlocked (without
# jax_compilation_cache_max_size), so a second process could read it half written (the command
# then reports and removes it as damaged). The worker's folder starts as hard links to the
# shared folder's entries (complete files; a link is made whole or not at all), and at its end
# the worker links its new entries into the shared folder the same way.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
MAX_WORKERS = 4


def _cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _link_entries(src: str, dst: str) -> None:
    """Make every file of ``src`` that ``dst`` lacks appear in ``dst``, whole: a hard link, or
    a copy renamed into place where the two folders are on different file systems."""
    import shutil
    import tempfile

    have = set(os.listdir(dst))
    for name in os.listdir(src):
        if name in have or name.startswith("."):
            continue
        source, target = os.path.join(src, name), os.path.join(dst, name)
        try:
            os.link(source, target)
        except FileExistsError:
            pass
        except OSError:
            try:
                fd, part = tempfile.mkstemp(dir=dst, prefix=".part-")
                os.close(fd)
                shutil.copyfile(source, part)
                os.replace(part, target)
            except OSError:
                pass


def _worker_cache() -> tuple[str, str] | None:
    """(shared folder, this worker's folder), or None outside a worker or with the cache off."""
    import tempfile

    import jax

    shared = jax.config.jax_compilation_cache_dir
    if not WORKER or not shared or not os.path.isdir(shared):
        return None
    own = tempfile.mkdtemp(prefix=f"sdtheory-jax-{WORKER}-")  # owner-only, as the shared one
    _link_entries(shared, own)
    jax.config.update("jax_compilation_cache_dir", own)
    os.environ["SDTHEORY_JAX_CACHE"] = own        # the command runs and Dask workers it starts
    return shared, own


CACHES = _worker_cache()


def _worker_blas_threads() -> None:
    """In a worker, numpy's BLAS gets the worker's share of the CPUs (one thread with two
    workers on two CPUs): OpenBLAS's threads spin while they wait, and two workers each with a
    thread per CPU made the conditioning tests 1.6 times slower than one thread each
    (sdtheory/_blas.py measured up to 35 times for eigh under contention)."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if WORKER and count > 1:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=max(1, _cpus() // count), user_api="blas")


_worker_blas_threads()


def pytest_sessionfinish(session):
    if CACHES is not None:
        import shutil

        shared, own = CACHES
        _link_entries(own, shared)
        shutil.rmtree(own, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per CPU this process may run on, at most MAX_WORKERS (each
    worker holds its own JAX and compiles its own programs), or $PYTEST_XDIST_AUTO_NUM_WORKERS.
    ``-n 0`` runs in this process (for one test, or a debugger)."""
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env:
        return int(env)
    return min(_cpus(), MAX_WORKERS)


def pytest_addoption(parser, pluginmanager):
    """Without pytest-xdist (``-p no:xdist``, or not installed), addopts' ``--numprocesses``
    is accepted and the tests run in this process."""
    if not pluginmanager.has_plugin("xdist"):
        parser.addoption("--numprocesses", dest="numprocesses", default=None,
                         help="the number of test processes (ignored: pytest-xdist is off)")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(20240216)


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    """A small three-class feature file (90 training, 30 test samples) for command runs."""
    import numpy as np

    rng = np.random.default_rng(4)
    means = rng.standard_normal((3, 6)) * 2
    y = np.repeat(np.arange(3), 30)
    yt = np.repeat(np.arange(3), 10)
    path = tmp_path_factory.mktemp("f") / "f.npz"
    np.savez(path, X_train=means[y] + 0.7 * rng.standard_normal((90, 6)), y_train=y,
             X_test=means[yt] + 0.7 * rng.standard_normal((30, 6)), y_test=yt)
    return path
