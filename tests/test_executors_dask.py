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


@pytest.mark.slow
def test_probe_same_csv_on_every_executor(feature_file, tmp_path, scheduler):
    """A small probe sweep (2 noise types x 2 rates x 2 seeds, closed engine): the CSV is
    byte-identical across serial, local (2 workers) and the explicit scheduler, certificates
    included (each task is one (noise, rate, seed) run on every executor)."""
    runs, raw = {}, {}
    for name, extra in (("serial", []), ("local", ["--executor", "local", "--workers", "2"]),
                        ("dask", ["--executor", "dask", "--scheduler", scheduler])):
        out = tmp_path / name
        rc = main(["--quiet", "probe", "--features", str(feature_file), "--noise", "sym,asym",
                   "--rates", "0.2,0.5", "--seeds", "0,1", "--rounds", "2", "--lam", "1e-3",
                   "--out", str(out), *extra])
        assert rc == 0
        runs[name] = _rows(out / "probe.csv")
        raw[name] = (out / "probe.csv").read_bytes()
        assert b"executor" not in raw[name]                  # the config names no executor
    assert len(runs["serial"]) == 2 * 2 * 2 * 4
    assert all(float(r["certificate"]) <= 1e-10 for r in runs["serial"])
    assert raw["local"] == raw["serial"] and raw["dask"] == raw["serial"]


@pytest.mark.slow
def test_verify_same_results_on_every_executor(scheduler):
    """Quick verify of five checks: every field of every result but its time is equal on the
    three executors, the round-off notes of trained_vs_closed_form included (each task runs
    numpy's BLAS on one thread on every executor: LAPACK's last digits depend on it)."""
    from sdtheory.jobs import verify

    names = ["eta_boundary", "r_star_closed_vs_linear", "borup_andersen_toy", "collapse",
             "trained_vs_closed_form"]
    out = {}
    for kind, kw in (("serial", {}), ("local", {"workers": 2}),
                     ("dask", {"scheduler": scheduler})):
        out[kind] = [{k: v for k, v in r.to_dict().items() if k != "seconds"}
                     for r in verify.run(names, quick=True, executor=kind, **kw)]
    assert out["serial"] == out["local"] == out["dask"]
    assert [r["name"] for r in out["serial"]] == [n for n in verify.checks() if n in names]
    assert all(r["ok"] for r in out["serial"])
    gaps = [n for r in out["serial"] if r["name"] == "trained_vs_closed_form"
            for n in r["notes"]]
    assert len(gaps) == 2 and all("trained vs exact <=" in n for n in gaps)


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


@pytest.mark.parametrize("executors, nx, ny, cut", [
    (("dask",), 6, 8, 10),
    pytest.param(("local", "dask"), 12, 16, 40, marks=pytest.mark.slow),
], ids=["dask-6x8", "local-dask-12x16"])
def test_phase_same_csv_on_every_executor(tmp_path, scheduler, monkeypatch, executors, nx, ny,
                                          cut):
    """An nx x ny exact phase diagram of r*, cut into tasks of ``cut`` cells (the default cut,
    thousands of cells per task, is shrunk so that this small grid makes 5 tasks): the CSV is
    byte-identical across serial, the explicit scheduler and (12 x 16, slow: it starts a cluster
    of its own) local, certificates included.

    The cut is the same on every executor because a cell's last digits depend on the batch it
    is solved in: on the 12 x 16 grid, tasks of 40 cells against one task of 192 change 172
    certificates by up to 3.6e-13 (measured), while every executor with the same cut agrees.
    """
    from sdtheory.jobs.sweep import engine

    monkeypatch.setattr(engine, "_task_cells", lambda K, solver: cut)
    extras = {"serial": [], "local": ["--executor", "local", "--workers", "2"],
              "dask": ["--executor", "dask", "--scheduler", scheduler]}
    raw, rows = {}, {}
    for name in ("serial", *executors):
        out = tmp_path / name
        rc = main(["--quiet", "phase", "--x", f"eta:0:0.7:{nx}", "--y", f"lam:1e-5:1e-2:{ny}:log",
                   "--max-rounds", "30", "--n", "100", "--out", str(out), *extras[name]])
        assert rc == 0
        (csv_path,) = out.glob("*.csv")
        raw[name], rows[name] = csv_path.read_bytes(), _rows(csv_path)
    assert len(rows["serial"]) == nx * ny
    assert all(float(r["certificate"]) <= 1e-10 for r in rows["serial"])
    assert len({r["r_star"] for r in rows["serial"]}) > 2          # not one value everywhere
    assert all(raw[name] == raw["serial"] for name in executors)


def test_local_cluster_listens_on_loopback_only():
    """--executor local: every socket that the cluster (this process and its worker
    processes) listens on is bound to 127.0.0.1, the dashboard's too (it listened on
    0.0.0.0)."""
    psutil = pytest.importorskip("psutil")

    def listening():
        pids = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
        return {c.laddr for c in psutil.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.pid in pids}

    before = listening()                     # e.g. this module's own test scheduler
    with executor("local", workers=1):
        info = distributed.default_client().scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:"), info["address"]
        listening = listening() - before
    assert len(listening) >= 3                # scheduler, dashboard, a worker (and nanny)
    assert all(a.ip == "127.0.0.1" for a in listening), listening
