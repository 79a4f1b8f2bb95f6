"""Executors on Dask (sdtheory.executors): serial, an embedded LocalCluster and an explicitly
started scheduler give the same results; a worker killed mid-run is survived. Dask comes with
the test extra (pyproject [test]); without it this module is reported as skipped."""

import csv
import os

import pytest

from sdtheory.cli import main
from sdtheory.executors import executor, run_tasks, task

distributed = pytest.importorskip("distributed", reason="needs the dask extra: pip install "
                                  "'sdtheory[dask]'")


@pytest.fixture(scope="module")
def scheduler():
    """An explicitly started Dask scheduler with two worker processes (as a user's cluster)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _rows(path):
    with open(path) as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    return list(csv.DictReader(lines))


def test_probe_same_csv_on_every_executor(feature_file, tmp_path, scheduler):
    """A small probe sweep (2 noise types x 2 rates x 2 seeds, closed engine): every column of
    the CSV is byte-identical across serial, local (2 workers) and the explicit scheduler,
    except the certificates, round-off residuals whose last digits depend on the threads of
    the process that solved (measured), all <= 1e-10."""
    runs = {}
    for name, extra in (("serial", []), ("local", ["--executor", "local", "--workers", "2"]),
                        ("dask", ["--executor", "dask", "--scheduler", scheduler])):
        out = tmp_path / name
        rc = main(["--quiet", "probe", "--features", str(feature_file), "--noise", "sym,asym",
                   "--rates", "0.2,0.5", "--seeds", "0,1", "--rounds", "2", "--lam", "1e-3",
                   "--out", str(out), *extra])
        assert rc == 0
        runs[name] = _rows(out / "probe.csv")
        with open(out / "probe.csv") as fh:
            assert fh.readline() and "executor" not in fh.readline()   # config: no executor
    base = runs["serial"]
    assert len(base) == 2 * 2 * 2 * 4
    for name in ("local", "dask"):
        for a, b in zip(base, runs[name]):
            assert {k: v for k, v in a.items() if k != "certificate"} == \
                   {k: v for k, v in b.items() if k != "certificate"}
            assert float(a["certificate"]) <= 1e-10 and float(b["certificate"]) <= 1e-10


def test_verify_same_results_on_every_executor(scheduler):
    """Quick verify of four checks: tried, passed and worst margins equal on the three
    executors (these checks' margins are closed forms and integer rounds)."""
    from sdtheory import verify

    names = ["eta_boundary", "r_star_closed_vs_linear", "borup_andersen_toy", "collapse"]
    out = {}
    for kind, kw in (("serial", {}), ("local", {"workers": 2}),
                     ("dask", {"scheduler": scheduler})):
        out[kind] = [(r.name, r.tried, r.passed, r.worst_margin, r.ok)
                     for r in verify.run(names, quick=True, executor=kind, **kw)]
    assert out["serial"] == out["local"] == out["dask"]
    assert [r[0] for r in out["serial"]] == [n for n in verify.checks() if n in names]


@task
def _square_or_die(i, marker):
    """Kills its worker process the first time task 3 runs (marker file absent), else i^2."""
    if i == 3 and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write("killed")
        os._exit(1)
    return i * i


def test_worker_killed_mid_run_is_survived(tmp_path, scheduler):
    """Task 3 kills its worker once; Dask reruns it on a live worker and the run completes with
    every result in order."""
    marker = str(tmp_path / "killed")
    with executor("dask", scheduler=scheduler) as ex:
        got = run_tasks(ex, _square_or_die, [(i, marker) for i in range(8)])
    assert os.path.exists(marker)
    assert got == [i * i for i in range(8)]


def test_phase_same_csv_on_every_executor(tmp_path, scheduler):
    """A 12 x 5 exact phase diagram of r*: the CSV is byte-identical across serial, local and
    the explicit scheduler except the certificate column (round-off residuals whose digits
    depend on how the cells are batched: measured, up to 7.5e-13 apart), all <= 1e-10."""
    runs = {}
    for name, extra in (("serial", []), ("local", ["--executor", "local", "--workers", "2"]),
                        ("dask", ["--executor", "dask", "--scheduler", scheduler])):
        out = tmp_path / name
        rc = main(["--quiet", "phase", "--x", "eta:0:0.7:12", "--y", "lam:1e-5:1e-2:5:log",
                   "--max-rounds", "30", "--n", "100", "--out", str(out), *extra])
        assert rc == 0
        (csv_path,) = out.glob("*.csv")
        runs[name] = _rows(csv_path)
    base = runs["serial"]
    assert len(base) == 60
    for name in ("local", "dask"):
        for a, b in zip(base, runs[name]):
            assert {k: v for k, v in a.items() if k != "certificate"} == \
                   {k: v for k, v in b.items() if k != "certificate"}
            assert float(b["certificate"]) <= 1e-10
