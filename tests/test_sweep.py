"""Phase diagrams: the batched exact solver against per-cell ExactSolver rounds, the
vectorised linear path against the closed form and per-cell LinearSolver rounds, files, CLI
exit codes."""

import dataclasses
import json
import math

import numpy as np
import pytest

from sdtheory import theory
from sdtheory.cli import main
from sdtheory.distill import self_distill
from sdtheory.jobs.sweep import Axis, phase_diagram, plan
from sdtheory.models import two_level
from sdtheory.noise import delta as noise_delta
from sdtheory.plots.phase import plot_phase
from sdtheory.problem import ProblemConfig, build_problem, model_of
from sdtheory.results import CERT_BOUND
from sdtheory.results import read_phase_csv as read_csv
from sdtheory.results import write_phase_csv as write_csv
from sdtheory.solvers import ExactSolver, LinearSolver


def _per_cell(base, x, y, quantity, solver, R):
    """The same diagram by one ExactSolver / LinearSolver and distill.self_distill per cell."""
    out = np.full((y.count, x.count), np.nan)
    for iy, yv in enumerate(y.values):
        for ix, xv in enumerate(x.values):
            kw = {}
            for ax, v in ((x, xv), (y, yv)):
                kw[ax.name] = int(v) if ax.name in ("n", "K") else float(v)
            p = build_problem(dataclasses.replace(base, **kw))
            s = (ExactSolver(gram=p.model, labels=p.corruption.counts, lam=p.config.lam)
                 if solver == "exact" else
                 LinearSolver(gram=p.model, labels=p.corruption.counts, lam=p.config.lam))
            res = self_distill(s, R, pll=quantity == "pll_gain")
            if quantity == "r_star":
                out[iy, ix] = np.nan if res.r_star is None else res.r_star
            elif quantity == "acc_round_R":
                out[iy, ix] = res.rounds[-1].train_acc
            else:
                best = max(rr.train_acc for rr in res.rounds)
                out[iy, ix] = res.pll.train_acc - best
    return out


def _assert_same(a, b, tol=0.0):
    assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
    np.testing.assert_allclose(a[~np.isnan(a)], b[~np.isnan(b)], atol=tol, rtol=0)


CASES = [
    # (base config, x, y): eta x lam; K x n (shapes change: one batch per K); superclass model
    (ProblemConfig(K=4, n=60, c=0.4, d=0.1), "eta:0:0.7:4", "lam:1e-4:1e-2:3:log"),
    (ProblemConfig(n=30, eta=0.3, lam=1e-3), "K:2:4:3", "n:20:60:2"),
    (ProblemConfig(model="superclass", K=4, n=40, c=0.5, d=0.2, noise="superclass", lam=1e-3),
     "eta:0:0.45:3", "e:-0.05:0.1:2"),
]


@pytest.mark.parametrize("base, xs, ys", CASES, ids=["eta-lam", "K-n", "superclass"])
def test_batched_exact_r_star_equals_per_cell_rounds(base, xs, ys):
    x, y = Axis.parse(xs), Axis.parse(ys)
    res = phase_diagram(base, x, y, quantity="r_star", solver="exact", max_rounds=15)
    assert res.data.shape == (y.count, x.count)
    assert np.all(res.values["certificate"] <= CERT_BOUND)
    ref = _per_cell(base, x, y, "r_star", "exact", 15)
    _assert_same(res.data, ref)
    assert np.isfinite(ref).sum() >= 3 and np.nanmax(ref) >= 1   # not a trivial grid


@pytest.mark.parametrize("quantity", ["acc_round_R", "pll_gain"])
@pytest.mark.parametrize("solver", ["exact", "linear"])
def test_accuracy_and_pll_gain_equal_per_cell_rounds(quantity, solver):
    base = ProblemConfig(K=3, n=40, c=0.4, d=0.1, noise="asym")
    x, y = Axis.parse("eta:0.1:0.6:3"), Axis.parse("lam:3e-4:3e-2:3:log")
    res = phase_diagram(base, x, y, quantity=quantity, solver=solver, max_rounds=4)
    ref = _per_cell(base, x, y, quantity, solver, 4)
    _assert_same(res.data, ref, tol=1e-12)
    assert np.ptp(ref) > 0.05
    if quantity == "pll_gain":
        np.testing.assert_allclose(res.data, res.values["pll_acc"] - res.values["sd_best_acc"])


@pytest.mark.parametrize("base", [
    ProblemConfig(K=4, n=500, c=0.4, d=0.1, lam=1e-6),                       # smallest lam
    ProblemConfig(model="superclass", K=4, n=50, c=0.5, d=0.2, e=0.0, noise="superclass", lam=1e-4),
    ProblemConfig(K=3, n=50, noise="pairflip", sampled=True, seed=3, lam=1e-3),  # unbalanced
], ids=["two-level", "three-level", "sampled"])
def test_batched_outputs_equal_group_solver(base):
    """The sweep's batched solver (every cell of a plan at once) equals one ExactSolver per
    cell, round after round."""
    p = plan(base, Axis.parse("eta:0.1:0.45:3"), Axis.parse("c:0.4:0.6:2"))
    (g,) = p.groups
    diag, alpha, L, w = g.class_structure()
    batch = ExactSolver.group_batch(diag=diag, alpha=alpha, L=L, w=w, counts=g.counts[g.cfg],
                                    lam=g.lam)
    refs = []
    for i in range(g.size):
        cfg = dataclasses.replace(base, K=g.K, n=int(g.n[i]), c=float(g.c[i]), d=float(g.d[i]),
                                  e=float(g.e[i]))
        refs.append(ExactSolver(gram=model_of(cfg), labels=g.counts[g.cfg[i]], lam=g.lam[i]))
    T = batch.targets0()
    for _ in range(3):                                    # rounds 0, 1, 2
        out = batch.fit_batch(T)
        assert np.all(out.ok) and np.all(out.residual <= CERT_BOUND)
        for i, ref in enumerate(refs):
            units = ref.true * g.K + ref.given
            fit = ref.fit(T[i, units])
            np.testing.assert_allclose(out.P[i, units], fit.P, rtol=0,
                                       atol=1e3 * (out.residual[i] + fit.residual) + 1e-13)
        T = out.P


@pytest.mark.parametrize("noise_kind, model", [("sym", "block"), ("asym", "block"),
                                                ("pairflip", "block"),
                                                ("superclass", "superclass")])
def test_vectorised_exact_counts_equal_noise_module(noise_kind, model):
    base = ProblemConfig(model=model, K=6, n=70, c=0.5, d=0.2, e=0.0, classes_per_superclass=3,
                     noise=noise_kind)
    x, y = Axis.parse("eta:0:0.6:13"), Axis.parse("n:7:300:5")
    (g,) = plan(base, x, y).groups
    X, Y = np.meshgrid(x.values, y.values)
    for i, cell in enumerate(g.index):
        p = build_problem(dataclasses.replace(base, eta=float(X.flat[cell]),
                                              n=int(Y.flat[cell])))
        np.testing.assert_array_equal(g.counts[g.cfg[i]], p.corruption.counts)


def _closed_form_brute(model, counts, lam):
    """Independent closed form: Delta by noise.delta, a2, a3 by BlockModel.mu, r by counting."""
    K = model.K
    if not np.any(np.asarray(counts)[~np.eye(K, dtype=bool)]):
        return 0.0
    dlt = noise_delta(counts)
    mu = model.mu()
    a2 = mu["class"] / (mu["class"] + K * model.N * lam)
    a3 = mu["instance"] / (mu["instance"] + K * model.N * lam)
    if not dlt > 0:
        return np.nan
    r = 0
    while not (a2 / a3) ** (r + 1) > 1 + 1 / dlt:
        r += 1
    return float(r)


def test_linear_r_star_equals_closed_form_and_impossible_beyond_boundary():
    base = ProblemConfig(K=4, n=500, c=0.4, d=0.1)
    x, y = Axis.parse("eta:0:0.9:46"), Axis.parse("lam:1e-6:1e-2:21:log")
    R = 40
    res = phase_diagram(base, x, y, quantity="r_star", solver="linear", max_rounds=R)
    cf = res.values["r_star_closed_form"]
    model = two_level(4, 500, 0.4, 0.1)
    for iy in range(0, y.count, 4):
        for ix in range(0, x.count, 3):
            p = build_problem(dataclasses.replace(base, eta=float(x.values[ix])))
            ref = _closed_form_brute(model, p.corruption.counts, y.values[iy])
            assert (np.isnan(ref) and np.isnan(cf[iy, ix])) or ref == cf[iy, ix]
    possible = x.values < 0.75
    assert np.all(np.isnan(cf[:, ~possible])) and np.all(np.isnan(res.data[:, ~possible]))
    assert np.all(np.isfinite(cf[:, possible]))
    expect = np.where(cf <= R, cf, np.nan)               # the closed form where Delta > 0
    _assert_same(res.data, expect)
    assert 0 < np.isfinite(res.data).sum() < res.data.size and np.nanmax(res.data) > 10


@pytest.mark.parametrize("base, xs", [
    (ProblemConfig(K=4, n=40, noise="asym"), "eta:0:0.6:5"),
    (ProblemConfig(K=3, n=40, noise="sym", sampled=True, seed=5), "eta:0:0.6:5"),
    (ProblemConfig(model="superclass", K=6, n=20, c=0.5, d=0.2, e=0.05, classes_per_superclass=3,
               noise="sym"), "eta:0:0.6:5"),
    # unbalanced counts with a clean class (its only unit is (k, k))
    (ProblemConfig(K=3, n=50, counts=((50, 0, 0), (12, 30, 8), (5, 21, 24))), "c:0.15:0.9:6"),
], ids=["asym", "sampled", "three-level-sym", "counts"])
def test_linear_r_star_equals_per_cell_linear_rounds(base, xs):
    x, y = Axis.parse(xs), Axis.parse("lam:1e-5:1e-2:4:log")
    res = phase_diagram(base, x, y, quantity="r_star", solver="linear", max_rounds=25)
    ref = _per_cell(base, x, y, "r_star", "linear", 25)
    _assert_same(res.data, ref)
    assert np.isfinite(ref).any()


def test_vectorised_closed_form_equals_counting_rounds():
    """theory.r_star_closed on arrays = the smallest r with (a2/a3)^(r+1) > 1 + 1/Delta found
    by counting, and = its scalar form."""
    rng = np.random.default_rng(7)
    d = np.concatenate([rng.uniform(-0.1, 1, 200), [0.5, 1.0, 0.25]])
    a3 = np.concatenate([rng.uniform(0.01, 0.9, 200), [0.3, 0.25, 0.2]])
    a2 = np.concatenate([a3[:200] * rng.uniform(0.9, 3, 200), [0.9, 0.5, 0.2 * 5 ** 0.5]])
    got = theory.r_star_closed(d, a2, a3)
    for i in range(d.size):
        ref = None
        if d[i] > 0 and a2[i] > a3[i]:
            ref = 0
            while not (a2[i] / a3[i]) ** (ref + 1) > 1 + 1 / d[i]:
                ref += 1
        assert (ref is None and np.isnan(got[i])) or got[i] == ref
        assert theory.r_star_closed(d[i], a2[i], a3[i]) == ref


def test_axis_parse_values_and_spec_round_trip():
    a = Axis.parse("lam:1e-6:1e-2:5:log")
    np.testing.assert_allclose(a.values, [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], rtol=1e-12)
    assert Axis.parse(a.spec) == a
    np.testing.assert_array_equal(Axis.parse("n:10:20:3").values, [10, 15, 20])
    with pytest.raises(ValueError, match="repeated integers"):
        Axis.parse("K:2:3:5")


def test_csv_round_trip_columns_config_and_empty_cells(tmp_path):
    base = ProblemConfig(K=4, n=100, c=0.4, d=0.1)
    res = phase_diagram(base, "eta:0:0.8:5", "lam:1e-4:1e-2:3:log", solver="exact",
                      max_rounds=10)
    path = tmp_path / "p.csv"
    write_csv(res, path)
    lines = path.read_text().splitlines()
    meta = json.loads(lines[0][len("# sdtheory phase "):])
    from sdtheory import __version__

    assert meta["version"] == __version__
    cfg = meta["config"]
    assert (cfg["x"], cfg["y"], cfg["quantity"], cfg["solver"], cfg["max_rounds"]) == (
        "eta:0.0:0.8:5", "lam:0.0001:0.01:3:log", "r_star", "exact", 10)
    assert (cfg["K"], cfg["n"], cfg["c"], cfg["d"], cfg["noise"]) == (4, 100, 0.4, 0.1, "sym")
    assert "eta" not in cfg and "lam" not in cfg         # swept: given by the axes
    header = lines[1].split(",")
    assert header[:3] == ["eta", "lam", "r_star"]
    assert "certificate" in header and "r_star_closed_form" in header
    rows = [ln.split(",") for ln in lines[2:]]
    assert len(rows) == 15
    j = header.index("r_star")
    undefined = [r for r in rows if float(r[0]) >= 0.75]   # eta = 0.8: impossible
    assert len(undefined) == 3 and all(r[j] == "" for r in undefined)
    assert rows[0][:3] == ["0.0", "0.0001", "0"]
    back = read_csv(path)
    assert (back.x, back.y, back.quantity, back.solver, back.max_rounds) == (
        res.x, res.y, res.quantity, res.solver, res.max_rounds)
    assert list(back.values) == list(res.values)
    for k in res.values:
        _assert_same(back.values[k], res.values[k])
    assert back.config == res.config and back.version == res.version


def _phase(*extra) -> int:
    return main(["phase", *extra])


def test_run_cli_writes_csv_and_png(tmp_path, capsys):
    out = tmp_path / "out"
    rc = _phase("--n", "100", "--x", "eta:0:0.7:4", "--y", "lam:1e-4:1e-2:3:log",
                "--max-rounds", "12", "--solver", "linear", "--out", str(out))
    assert rc == 0
    cap = capsys.readouterr()
    assert "cells" in cap.err                            # progress on stderr
    csv = out / "phase_r_star_eta_lam.csv"
    png = out / "phase_r_star_eta_lam.png"
    assert cap.out.split() == [str(csv), str(png)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = read_csv(csv)
    ref = phase_diagram(ProblemConfig(n=100), "eta:0:0.7:4", "lam:1e-4:1e-2:3:log", solver="linear",
                      max_rounds=12)
    _assert_same(back.data, ref.data)
    assert sorted(p.name for p in out.iterdir()) == [csv.name, png.name]   # no temp files left


def test_plot_phase_overlay_from_csv(tmp_path):
    res = phase_diagram(ProblemConfig(n=100), "eta:0:0.7:8", "lam:1e-5:1e-2:6:log", solver="linear",
                      max_rounds=20)
    write_csv(res, tmp_path / "p.csv")
    fig = plot_phase(tmp_path / "p.csv", tmp_path / "p.png", overlay_closed_form_levels=True)
    ax = fig.axes[0]
    assert ax.get_xlabel() == r"noise rate $\eta$" and ax.get_ylabel() == r"ridge $\lambda$"
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    assert "r*" in fig.axes[1].get_ylabel()
    assert len(ax.collections) >= 2                      # colours and level lines
    assert (tmp_path / "p.png").stat().st_size > 10_000


@pytest.mark.parametrize("solver", ["linear", "exact"])
def test_fragile_column_marks_the_documented_near_ties(solver):
    """The accuracy at round R = 7 of noise-free labels (K = 4, n = 500): with the closed
    form's tolerance 1e-13 it hangs at lam = 1 on a margin of 1.4e-14 (docs/theory.md section
    9: fragile), at lam = 1e-2 on margins far above it. The exact cells, whose tolerance
    follows their certificates, equal the per-cell rounds' verdicts."""
    base = ProblemConfig(K=4, n=500, eta=0.0)
    res = phase_diagram(base, "eta:0:0:1", "lam:1e-2:1:2:log", quantity="acc_round_R",
                        solver=solver, max_rounds=7)
    if solver == "linear":
        assert res.fragile[:, 0].tolist() == [False, True]
    else:
        for i, lam in enumerate((1e-2, 1.0)):
            p = build_problem(dataclasses.replace(base, lam=lam))
            one = self_distill(ExactSolver(gram=p.model, labels=p.corruption, lam=lam), 7)
            assert res.fragile[i, 0] == one.rounds[7].fragile
    r_star = phase_diagram(base, "eta:0:0:1", "lam:1e-2:1:2:log", solver=solver,
                           max_rounds=7)
    assert not r_star.fragile.any()                      # r* = 0 with room at both


def test_plot_phase_hatches_fragile_cells_and_refuses_old_files(tmp_path):
    res = phase_diagram(ProblemConfig(K=4, n=500, eta=0.0), "eta:0:0.3:2",
                        "lam:1e-2:1:3:log", quantity="acc_round_R", solver="linear",
                        max_rounds=7)
    write_csv(res, tmp_path / "p.csv")
    fig = plot_phase(tmp_path / "p.csv", tmp_path / "p.png", overlay_fragile=True)
    hatched = [c for c in fig.axes[0].collections if c.get_hatch()]
    n = int(res.fragile.sum())
    assert n >= 1 and res.fragile[-1, 0]                   # eta = 0, lam = 1 (documented)
    assert len(hatched) == 1 and len(hatched[0].get_paths()) == n
    assert f"hatched: {n} fragile cells" in fig._suptitle.get_text()
    old = dataclasses.replace(res, values={k: v for k, v in res.values.items()
                                           if k != "fragile"})
    with pytest.raises(ValueError, match="no fragile column"):
        plot_phase(old, tmp_path / "q.png", overlay_fragile=True)


@pytest.mark.parametrize("extra, fragment", [
    (["--x", "foo:0:1:3"], "unknown parameter"),
    (["--x", "eta:0:0.5"], "bad range"),
    (["--x", "eta:0:zero:3"], "bad range"),
    (["--x", "eta:0:0.5:3:lin"], "bad range"),
    (["--x", "eta:0:0.5:0"], "COUNT must be >= 1"),
    (["--y", "lam:0:1e-2:3:log"], "LO > 0"),
    (["--x", "lam:1e-4:1e-2:3", "--y", "lam:1e-5:1e-3:3:log"], "both axes"),
    (["--model", "gmm"], "block models only"),
    (["--jitter", "0.01"], "not supported"),
    (["--x", "eta:0.5:1.2:3"], "eta must be a number in [0, 1), got 1.2"),
    (["--x", "c:0.0:0.5:3"], "c > d"),
    (["--x", "e:0:0.05:2"], "superclass model"),
    (["--x", "K:1:3:3"], "K (number of classes)"),
    (["--max-rounds", "-1"], "max-rounds"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    # later options override the defaults given first
    rc = _phase("--n", "50", "--x", "eta:0:0.5:3", "--y", "lam:1e-4:1e-2:3:log",
                *extra, "--out", str(out))
    err = capsys.readouterr().err
    assert rc == 2
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_counts_file_cannot_be_swept_over_eta(tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text(json.dumps([[40, 10], [10, 40]]))
    rc = _phase("--K", "2", "--n", "50", "--counts", str(f), "--out", str(tmp_path / "o"))
    assert rc == 2 and "--counts" in capsys.readouterr().err
    rc = _phase("--K", "2", "--n", "50", "--counts", str(f), "--x", "c:0.2:0.6:3", "--out",
                str(tmp_path / "o"), "--max-rounds", "5")
    assert rc == 0
    res = read_csv(tmp_path / "o" / "phase_r_star_c_lam.csv")
    assert res.config["counts"] == [[40, 10], [10, 40]]
    assert not math.isnan(res.data[-1, -1])
