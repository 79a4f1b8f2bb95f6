"""Test session: float64 on (explicitly, as a user would), headless matplotlib, and JAX's
persistent compilation cache of the ``sdtheory`` command (``$SDTHEORY_JAX_CACHE``, default
~/.cache/sdtheory/jax) from the first test on: the suite's cost is mostly compilation, and a
repeat run (or a test that compiles a program another one already compiled) loads it instead.
The in-process command tests would switch the cache on anyway, so without this the tests before
the first of them (or a file run alone) compiled everything.

The plain ``pytest`` runs the tests in one worker process per CPU (pytest-xdist, up to
MAX_WORKERS; ``-n 0`` runs them in this process): below, each worker's BLAS threads and
compilation cache folder."""

import os

WORKER = os.environ.get("PYTEST_XDIST_WORKER")
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
MAX_WORKERS = 4


def _cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# In a worker, numpy's and scipy's BLAS (OpenBLAS) get the worker's share of the CPUs (one
# thread with two workers on two CPUs), in this process and the commands it starts: OpenBLAS's
# threads spin while they wait, and on a busy machine a test ran 10 times slower on two of them
# than on one (test_real_features_every_solve_meets_its_certificate[1e-08-standard-dense],
# 26.5 s against 2.7 s, load average 3.7; sdtheory/_blas.py has the same for eigh). The
# environment variable reaches the libraries loaded from here on; threadpoolctl the ones already
# loaded.
BLAS_THREADS = max(1, _cpus() // WORKERS) if WORKER and WORKERS > 1 else None
if BLAS_THREADS is not None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(BLAS_THREADS))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=BLAS_THREADS, user_api="blas")

# JAX puts its cache folder into the compile options of every program (for the GPU autotuning
# cache it keeps there) and so into every cache key: a worker's own folder would share no entry
# with another's. Without those XLA caches (GPU only) a key does not depend on the folder; the
# commands and kernels the tests start inherit the setting.
os.environ.setdefault("JAX_PERSISTENT_CACHE_ENABLE_XLA_CACHES", "none")

import matplotlib  # noqa: E402
import pytest  # noqa: E402

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from sdtheory._x64 import configure_process  # noqa: E402

configure_process()

# Each worker compiles into a cache folder of its own: JAX's documentation describes one
# process writing a cache folder, and JAX (0.10) writes an entry in place, unlocked (without
# jax_compilation_cache_max_size), so a second process could read it half written (the command
# then reports and removes it as damaged). The worker's folder starts as hard links to the
# shared folder's entries (complete files; a link is made whole or not at all), and at its end
# the worker links its new entries into the shared folder the same way. A server or kernel that
# a test runs beside itself gets such a folder too (fixture side_cache).
SHARED_CACHE = None


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

    global SHARED_CACHE
    shared = jax.config.jax_compilation_cache_dir
    if not shared or not os.path.isdir(shared):
        return None
    SHARED_CACHE = shared
    if not WORKER:
        return None
    own = tempfile.mkdtemp(prefix=f"sdtheory-jax-{WORKER}-")  # owner-only, as the shared one
    _link_entries(shared, own)
    jax.config.update("jax_compilation_cache_dir", own)
    os.environ["SDTHEORY_JAX_CACHE"] = own        # the command runs and Dask workers it starts
    return shared, own


CACHES = _worker_cache()


def pytest_sessionfinish(session):
    if CACHES is not None:
        import shutil

        shared, own = CACHES
        _link_entries(own, shared)
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="module")
def side_cache(tmp_path_factory):
    """A compilation cache folder for a process that runs beside the tests (a server, a
    kernel): the shared folder's entries, and its new ones linked back at the end."""
    own = tmp_path_factory.mktemp("cache")
    if SHARED_CACHE is not None:
        _link_entries(SHARED_CACHE, str(own))
    yield own
    if SHARED_CACHE is not None:
        _link_entries(str(own), SHARED_CACHE)


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
    and ``--dist`` are accepted and the tests run in this process."""
    if not pluginmanager.has_plugin("xdist"):
        for name in ("numprocesses", "dist"):
            parser.addoption(f"--{name}", dest=name, default=None,
                             help="pytest-xdist's option (ignored: pytest-xdist is off)")


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
