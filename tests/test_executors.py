"""Executors (sdtheory.executors) without a cluster: failing tasks are reported with nothing
written; without Dask, --executor local|dask gives a clear message and exit code 2; option
errors. These run whether or not Dask is installed (tests/test_executors_dask.py needs it)."""

import sys

import pytest

from sdtheory.cli import main
from sdtheory.executors import SerialExecutor, TasksFailed, run_tasks, task


@task
def _fails_for_odd(i):
    if i % 2:
        raise RuntimeError(f"odd {i}")
    return i


def test_failing_tasks_are_reported_not_dropped():
    """Tasks that fail on every attempt: TasksFailed names exactly them, after the others
    finished."""
    with pytest.raises(TasksFailed) as err:
        run_tasks(SerialExecutor(), _fails_for_odd, [(i,) for i in range(6)],
                  labels=[f"cell {i}" for i in range(6)])
    assert err.value.missing == [1, 3, 5]
    assert "cell 1: RuntimeError: odd 1" in str(err.value)


def test_failed_run_writes_nothing(feature_file, tmp_path, monkeypatch, capsys):
    """A probe whose tasks fail (one per noise type, each a batch of its runs): one warning
    per retried task, then one error line, exit 1, no file written."""
    import sdtheory.jobs.probe as probe

    def boom(*args):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(probe, "_probe_trainings", boom)
    out = tmp_path / "out"
    rc = main(["--quiet", "probe", "--features", str(feature_file), "--rates", "0.2",
               "--seeds", "0", "--rounds", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "failed, nothing written: 3 task(s) failed after 2 attempts" in err[-1]
    assert len(err) == 4 and all("failed (RuntimeError: worker lost); retrying" in e
                                 for e in err[:-1])
    assert not out.exists() or not any(out.iterdir())


def test_without_dask_a_clear_message_and_exit_2(feature_file, tmp_path, monkeypatch, capsys):
    """With Dask not importable, --executor local and dask print the pip command and exit 2
    before any work; serial still runs."""
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed fails
    for extra in (["--executor", "local"], ["--executor", "dask", "--scheduler", "tcp://x:1"]):
        out = tmp_path / extra[1]
        rc = main(["--quiet", "probe", "--features", str(feature_file), "--out", str(out),
                   *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1
        assert "pip install 'sdtheory[dask]'" in err[0] and not out.exists()
    rc = main(["--quiet", "verify", "--only", "eta_boundary", "--quick", "--executor", "local"])
    assert rc == 2 and "pip install" in capsys.readouterr().err


@pytest.mark.parametrize("args, fragment", [
    (["--workers", "2"], "--workers applies to --executor local only"),
    (["--executor", "dask"], "--executor dask needs --scheduler"),
    (["--executor", "local", "--workers", "0"], "--workers must be an integer in [1, 1024]"),
    (["--scheduler", "tcp://x:1"], "--scheduler applies to --executor dask only"),
])
def test_executor_option_errors(feature_file, tmp_path, capsys, args, fragment):
    out = tmp_path / "o"
    rc = main(["--quiet", "probe", "--features", str(feature_file), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and fragment in err[0] and not out.exists()
