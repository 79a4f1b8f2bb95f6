"""Independent tasks through the standard :class:`concurrent.futures.Executor` interface:
serial (the default), an embedded Dask ``LocalCluster``, or an existing Dask scheduler.

The jobs that outgrow one process (probe sweeps, verify grids) are bags of independent tasks.
:func:`executor` opens one of three executors; :func:`run_tasks` submits the tasks, reports
progress (tasks done out of total, time left), returns the results in task order, and retries
a task whose worker was lost. A task that still fails makes :func:`run_tasks` raise
:class:`TasksFailed` naming every missing task, so a caller never writes a partial file.

Every task is a module-level function of plain arguments. Whatever it returns is identical to
the serial path because each task derives its own seeds from its arguments (never from the
worker), enables float64 itself and runs numpy's BLAS on one thread (:func:`task`), and
callers cut their work into the same tasks on every executor.

Dask is an optional extra: ``pip install 'sdtheory[dask]'``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait

from sdtheory._memory import PROCESS_BYTES, check_memory
from sdtheory._progress import Progress
from sdtheory._validate import check_choice

__all__ = ["EXECUTORS", "DaskMissing", "SerialExecutor", "TasksFailed", "check_executor",
           "executor", "run_tasks", "task"]

log = logging.getLogger(__name__)

EXECUTORS = ("serial", "local", "dask")
RETRIES = 1
"""Resubmissions of a failed task before it counts as missing."""

DASK_INSTALL = "pip install 'sdtheory[dask]'  (or: pip install 'dask[distributed]==2026.8.0')"


class DaskMissing(ValueError):
    """The local or dask executor was asked for without Dask installed (a usage error: the
    command exits 2 with the pip command)."""


class TasksFailed(RuntimeError):
    """Some tasks failed on every attempt.

    Attributes:
      missing: indices of the tasks without a result; errors: their last error messages.
    """

    def __init__(self, missing: list[int], errors: list[str], labels: list[str]):
        self.missing, self.errors = missing, errors
        shown = "; ".join(f"{lab}: {err}" for lab, err in zip(labels[:5], errors[:5]))
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        super().__init__(f"{len(missing)} task(s) failed after {RETRIES + 1} attempts: "
                         f"{shown}{more}")


class SerialExecutor(Executor):
    """Runs each task when it is submitted, in this process (the default executor)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as err:       # noqa: BLE001 - delivered through the future
            fut.set_exception(err)     # (an interrupt is not a task's failure: it propagates)
        return fut


def _dask():
    try:
        import distributed
    except ImportError:
        raise DaskMissing("the local and dask executors need Dask, which is not installed: "
                          + DASK_INSTALL) from None
    return distributed


def check_executor(kind: str, workers=None, scheduler=None) -> None:
    """Validate executor options before any work (and that Dask is importable for local and
    dask); raises ValueError / :class:`DaskMissing` with a one-line message."""
    check_choice(kind, EXECUTORS, "--executor")
    if kind != "local" and workers is not None:
        raise ValueError("--workers applies to --executor local only")
    if kind != "dask" and scheduler is not None:
        raise ValueError("--scheduler applies to --executor dask only")
    if kind == "dask" and not scheduler:
        raise ValueError("--executor dask needs --scheduler tcp://HOST:PORT")
    if kind == "local" and workers is not None and not (isinstance(workers, int) and
                                                         1 <= workers <= 1024):
        raise ValueError(f"--workers must be an integer in [1, 1024], got {workers!r}")
    if kind != "serial":
        _dask()


LOCAL_WORKERS = 2
"""Worker processes of a local cluster when --workers is not given."""

WORKER_BYTES = 150 * 2 ** 20
"""Resident memory of one local worker process (its nanny included) that has imported
sdtheory and JAX, above its tasks' own arrays (calibrated on the local-cluster jobs of
benchmarks/bench_memory.py)."""


def memory_bytes(kind: str, workers: int | None, task_bytes: float) -> float:
    """Peak memory on this machine of a job whose largest task holds ``task_bytes``: this
    process, plus on a local cluster every worker process running one such task at once (a
    dask scheduler's workers are on their own machines)."""
    if kind == "local":
        n = LOCAL_WORKERS if workers is None else workers
        return PROCESS_BYTES + n * (WORKER_BYTES + task_bytes)
    return PROCESS_BYTES + (task_bytes if kind == "serial" else 0.0)


@contextlib.contextmanager
def executor(kind: str = "serial", *, workers: int | None = None,
             scheduler: str | None = None, task_bytes: float | None = None,
             what: str = "this job") -> Iterator[Executor]:
    """An executor for the duration of a ``with`` block.

    Args:
      kind: "serial" (this process), "local" (an embedded Dask LocalCluster of ``workers``
        single-threaded worker processes, default 2), or "dask" (the existing scheduler at
        ``scheduler``, e.g. tcp://host:8786).
      workers: number of local worker processes (local only).
      scheduler: scheduler address (dask only).
      task_bytes: peak memory of the largest task; given, the job's whole estimate
        (:func:`memory_bytes`) is checked against the available memory before any process is
        started; ``what`` names the job in the refusal.

    Raises:
      ValueError: an unknown kind, options that do not fit it, or too little memory.
      DaskMissing: Dask is not installed (local, dask).
    """
    check_executor(kind, workers, scheduler)
    n = LOCAL_WORKERS if workers is None else workers       # local worker processes
    if task_bytes is not None:
        on = f" on {n} workers (--workers)" if kind == "local" else ""
        check_memory(memory_bytes(kind, n, task_bytes), what + on)
    if kind == "serial":
        yield SerialExecutor()
        return
    distributed = _dask()
    if kind == "local":
        # CRITICAL: at shutdown a worker's heartbeat can race the closing scheduler and log a
        # CommClosedError at ERROR (seen once in 3 runs of verify); a task's own failure still
        # reaches this process through its future (TasksFailed)
        # scheduler, workers and dashboard on the loopback interface: nothing of the cluster
        # is reachable from another host (the dashboard listened on 0.0.0.0)
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                      silence_logs=logging.CRITICAL) as lc, \
                distributed.Client(lc) as client:
            log.info("local Dask cluster: %d worker processes", n)
            yield client.get_executor(retries=RETRIES)
        return
    try:
        client = distributed.Client(scheduler, timeout="10s")
    except OSError as err:
        raise ValueError(f"--scheduler {scheduler}: cannot connect ({err})") from None
    with client:
        log.info("Dask scheduler %s: %d workers", scheduler,
                 len(client.scheduler_info().get("workers", {})))
        yield client.get_executor(retries=RETRIES)


def task(fn: Callable) -> Callable:
    """Decorator for task functions: float64 enabled in whichever process runs them (the
    worker's own setting, not inherited from the submitting process), in a Dask worker also
    the persistent compilation cache of the ``sdtheory`` command, and numpy's BLAS on one
    thread on every executor (LAPACK's last digits depend on the thread count: see
    :mod:`sdtheory._blas`)."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        from sdtheory._blas import one_blas_thread
        from sdtheory._x64 import configure_process, enable_x64

        if _in_dask_worker():
            configure_process()        # float64 and the compilation cache, once per worker
        else:
            enable_x64()
        with one_blas_thread():
            return fn(*args, **kwargs)

    return run


def _in_dask_worker() -> bool:
    """Whether this code runs inside a Dask worker (without importing Dask where it is not
    loaded already: a worker has it loaded, and importing it costs about a second)."""
    import sys

    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def run_tasks(ex: Executor, fn: Callable, args: Sequence[tuple], *,
              labels: Sequence[str] | None = None, what: str = "task",
              logger: logging.Logger | None = None,
              sizes: Sequence[int] | None = None) -> list:
    """fn(*a) for every a in ``args`` on ``ex``; the results in task order.

    A task that raises is resubmitted :data:`RETRIES` time(s) (a Dask executor also reruns a
    task whose worker died); one that still fails is reported with the others in
    :class:`TasksFailed` after every task has finished. An interrupt (KeyboardInterrupt, or
    any other exception that is not an ``Exception``), here or in a task, is never retried: the
    pending tasks are cancelled and it propagates at once.
    """
    labels = list(labels) if labels is not None else [f"{what} {i}" for i in range(len(args))]
    # progress counts ``what``s: one per task, or ``sizes[i]`` for task i
    sizes = [1] * len(args) if sizes is None else [int(k) for k in sizes]
    tasks = _Tasks(ex, fn, list(args), labels, sizes,
                   Progress(logger or log, total=sum(sizes), what=what))
    # a serial executor runs a task as it is submitted: one at a time, so that progress
    # follows the tasks (submitted all at once, every task would run before the first report)
    batches = ([[i] for i in range(len(args))] if isinstance(ex, SerialExecutor)
               else [list(range(len(args)))])
    t0 = time.perf_counter()
    for batch in batches:
        tasks.run(batch)
    missing = [i for i in range(len(args)) if not tasks.done[i]]
    if missing:
        raise TasksFailed(missing, [tasks.errors[i] for i in missing],
                          [labels[i] for i in missing])
    log.debug("%d tasks in %.1f s", len(args), time.perf_counter() - t0)
    return tasks.results


class _Tasks:
    """The tasks of :func:`run_tasks` and their state: results, attempts, errors."""

    def __init__(self, ex, fn, args, labels, sizes, progress):
        self.ex, self.fn, self.args, self.labels = ex, fn, args, labels
        self.sizes, self.progress = sizes, progress
        self.attempts = dict.fromkeys(range(len(args)), 1)
        self.results: list = [None] * len(args)
        self.done = [False] * len(args)
        self.errors: dict[int, str] = {}

    def run(self, batch) -> None:
        """Submit the tasks ``batch`` and collect them (failed ones resubmitted); on any
        exception or interrupt the pending ones are cancelled."""
        futures = {self.ex.submit(self.fn, *self.args[i]): i for i in batch}
        try:
            self._collect(futures)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def _collect(self, futures) -> None:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = futures.pop(fut)
                err = fut.exception()
                if err is not None and not isinstance(err, Exception):
                    raise err              # an interrupt in a task: never retried
                if err is None:
                    self.results[i], self.done[i] = fut.result(), True
                    self.errors.pop(i, None)
                    self.progress.step(self.labels[i], n=self.sizes[i])
                    continue
                self.errors[i] = f"{type(err).__name__}: {err}"
                if self.attempts[i] <= RETRIES:
                    self.attempts[i] += 1
                    log.warning("%s failed (%s); retrying", self.labels[i], self.errors[i])
                    nf = self.ex.submit(self.fn, *self.args[i])
                    futures[nf] = i
                    pending.add(nf)
                else:
                    self.progress.step(f"{self.labels[i]} FAILED", n=self.sizes[i])
