"""Figures: config -> results file -> PNG, and the numbers the theory fixes in each results file.

Every figure runs with its ``[quick]`` settings into a temporary directory through the same
entry point as ``sdtheory figures`` (:func:`sdtheory.cli.main`).
"""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

import sdtheory
from sdtheory import figures, theory
from sdtheory.cli import main


def _figures(*argv) -> int:
    return main(["figures", *argv])


def _run(name, out):
    """Run one figure with --quick into ``out``; return its results document."""
    assert _figures("--only", name, "--out", str(out), "--quick") == 0
    path = out / f"{name}.json"
    assert path.is_file()
    return json.loads(path.read_text())


def _check_png(path, min_w=600, min_h=300):
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert w >= min_w and h >= min_h and w <= 4000 and h <= 4000
    assert float(np.std(img[..., :3])) > 0.01          # not a blank canvas


def _check_provenance(doc, name):
    assert doc["figure"] == name
    assert doc["version"] == sdtheory.__version__
    assert doc["config"]["quick"] is True
    assert doc["config"] == figures.load_config(name, quick=True)


@pytest.fixture(scope="module")
def approximation(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig")
    return out, _run("approximation", out)


@pytest.fixture(scope="module")
def label_averaging(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig")
    return out, _run("label_averaging", out)


@pytest.fixture(scope="module")
def pll_vs_sd(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig")
    return out, _run("pll_vs_sd", out)


# ------------------------------------------------------------------------------- runner / CLI

def test_list_names_every_figure(capsys):
    assert _figures("--list") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(figures.FIGURES)
    assert all(len(ln.split(None, 1)[1]) > 20 for ln in lines)      # a real description


def test_every_figure_has_a_config_with_quick_settings():
    for name in figures.FIGURES:
        full, quick = figures.load_config(name), figures.load_config(name, quick=True)
        assert full["quick"] is False and quick["quick"] is True
        assert {k: v for k, v in full.items() if k != "quick"} != \
               {k: v for k, v in quick.items() if k != "quick"}


def test_unknown_figure_exit_2(tmp_path, capsys):
    assert _figures("--only", "nope", "--out", str(tmp_path)) == 2
    assert "unknown figure" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_missing_experiments_dir_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(figures, "EXPERIMENTS", tmp_path / "missing")
    assert _figures("--only", "approximation", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "experiments directory not found" in err and str(tmp_path / "missing") in err


def test_cli_only_quick_writes_png_and_results(label_averaging, capfd):
    out, doc = label_averaging
    _check_png(out / "label_averaging.png")
    _check_provenance(doc, "label_averaging")
    assert sorted(p.name for p in out.iterdir()) == ["label_averaging.json",
                                                     "label_averaging.png"]   # no temp files


# ------------------------------------------------------------------------------- approximation

def test_approximation_results(approximation):
    out, doc = approximation
    _check_png(out / "approximation.png")
    _check_provenance(doc, "approximation")
    cfg = doc["config"]
    R = cfg["rounds"]
    for which in ("exact", "linear"):
        rows = doc["solvers"][which]
        assert [r["round"] for r in rows] == list(range(R + 1))
    # lam = 1e-5: the teacher (nearly) interpolates its labels, so it is right on every clean
    # sample and wrong on every noisy one, in both solvers.
    for which in ("exact", "linear"):
        r0 = doc["solvers"][which][0]
        assert r0["clean_acc"] == 1.0 and r0["noisy_acc"] == 0.0
        assert r0["train_acc"] == pytest.approx(1.0 - doc["realised_noise_rate"], abs=1e-12)
    assert all(r["residual"] <= 1e-10 for r in doc["solvers"]["exact"])
    # The configured eps keeps G PSD, the requested one does not; the semicircle bound.
    N = cfg["K"] * cfg["n"]
    assert doc["min_eigenvalue"] > 0 > doc["min_eigenvalue_requested_eps"]
    assert doc["eps_psd_bound"] == pytest.approx((1 - cfg["c"]) / (2 * np.sqrt(N / 3)))
    assert cfg["eps"] <= doc["eps_psd_bound"] < cfg["eps_requested"]
    assert doc["delta"] == pytest.approx(sdtheory.delta(doc["counts"]))


def test_approximation_full_config_uses_psd_eps():
    """The documented finding: eps = 0.05 at N = 2000 is past the PSD bound, eps = 0.01 is not."""
    cfg = figures.load_config("approximation")
    N = cfg["K"] * cfg["n"]
    bound = (1 - cfg["c"]) / (2 * np.sqrt(N / 3))
    assert N == 2000 and bound == pytest.approx(0.0116, abs=1e-4)
    assert cfg["eps"] == 0.01 < bound < cfg["eps_requested"] == 0.05


# ------------------------------------------------------------------------------- label_averaging

def test_label_averaging_shrink_is_closed_form(label_averaging):
    _, doc = label_averaging
    cfg = doc["config"]
    K, n, c, d, lam = cfg["K"], cfg["n"], cfg["c"], cfg["d"], cfg["lam"]
    N = K * n
    # docs/theory.md section 4, written out independently of the package.
    mu = {"global": 1 + (n - 1) * c + (K - 1) * n * d, "class": 1 + (n - 1) * c - n * d,
          "instance": 1 - c}
    rounds = np.asarray(doc["shrink"]["rounds"])
    assert rounds.tolist() == list(range(max(cfg["rounds"], max(cfg["rounds_shown"])) + 1))
    for name, m in mu.items():
        expected = (m / (m + K * N * lam)) ** (rounds + 1)
        np.testing.assert_allclose(doc["shrink"]["closed_form"][name], expected, rtol=1e-12)
        assert doc["mu"][name] == pytest.approx(m, rel=1e-12)


def test_label_averaging_outputs(label_averaging):
    _, doc = label_averaging
    cfg = doc["config"]
    true, given = np.asarray(doc["true"]), np.asarray(doc["given"])
    assert true.size == cfg["K"] * cfg["n"] and np.any(true != given)
    assert list(doc["outputs"]) == [str(r) for r in cfg["rounds_shown"]]
    for P in doc["outputs"].values():
        P = np.asarray(P)
        assert P.shape == (true.size, cfg["K"])
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)     # stored to 6 decimals
    # Instance directions die at the rate a3 (docs/theory.md section 3): the measured instance part
    # of the exact outputs shrinks by more than an order of magnitude within the quick rounds.
    inst = doc["shrink"]["exact_measured"]["instance"]
    assert inst[-1] < 0.1 * inst[0]
    assert doc["min_eigenvalue"] > 0


# ------------------------------------------------------------------------------- pll_vs_sd

def test_pll_vs_sd_results(pll_vs_sd):
    out, doc = pll_vs_sd
    _check_png(out / "pll_vs_sd.png")
    _check_provenance(doc, "pll_vs_sd")
    cfg = doc["config"]
    K, n = cfg["K"], cfg["n"]
    assert doc["eta_boundary"] == (K - 1) / K
    model = sdtheory.two_level(K, n, cfg["c"], cfg["d"])
    for panel in doc["panels"]:
        for row in panel["rows"]:
            eta = row["eta"]
            assert len(row["sd"]) == cfg["rounds"] + 1
            # Delta of exact counts: the rate's Delta up to the floor rounding (each off-diagonal
            # entry loses < 1/n, the diagonal gains < (K-1)/n).
            assert row["delta"] == pytest.approx(theory.delta_from_eta("sym", K, eta), abs=K / n)
            counts = sdtheory.exact_counts(sdtheory.transition_matrix("sym", K, eta), n)
            ok, margins = theory.pll_conditions(model, counts, panel["lam"])
            if eta > 0 and ok:
                # One-round PLL conditions (docs/theory.md section 6) hold: PLL corrects everything
                # (split ties: the clean samples' tied wrong classes share the second half).
                assert row["pll"]["split"] == 1.0, (eta, margins)
            r_star = theory.r_star_theory(model, counts, panel["lam"])
            if r_star is not None and r_star <= cfg["rounds"] and eta > 0:
                # The exact solver is not the linear theory, but at these settings it corrects
                # the labels no later than one round after the closed form says it should.
                assert any(a == 1.0 for a in row["sd"][: r_star + 2]), (eta, row["sd"], r_star)


# ------------------------------------------------------------------------------- min_rounds

@pytest.fixture(scope="module")
def min_rounds(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig")
    return out, _run("min_rounds", out)


def _linear_r_star(model, counts, lam, max_rounds=400):
    """r* of the linearised solver, by evaluating (L) round by round (independent of theory)."""
    from sdtheory.distill import accuracy
    from sdtheory.solvers import LinearSolver

    lin = LinearSolver(gram=model, labels=counts, lam=lam)
    for r in range(max_rounds + 1):
        if accuracy(lin.round_outputs(r), lin.true, lin.given, lin.weight[0])[0] == 1.0:
            return r
    return None


def test_min_rounds_closed_form_and_boundary(min_rounds):
    out, doc = min_rounds
    _check_png(out / "min_rounds.png")
    _check_provenance(doc, "min_rounds")
    cfg = doc["config"]
    assert [p["kind"] for p in doc["panels"]] == ["sym", "superclass"]
    for panel, spec in zip(doc["panels"], cfg["noise"]):
        model = figures._model_for(spec)
        K, m = model.K, spec.get("m")
        boundary = (K - 1) / K if panel["kind"] == "sym" else (m - 1) / m
        assert panel["eta_boundary"] == pytest.approx(boundary)
        a = theory.averaging_eigenvalues(model, cfg["lams"][0])
        checked = impossible = 0
        for row in panel["rows"]:
            C = np.asarray(row["counts"])
            assert row["delta"] == pytest.approx(sdtheory.delta(C))
            # closed-form column = theory's closed form = the linearised solver's first 100% round
            assert row["r_star_closed"] == theory.r_star_closed(row["delta"], a["class"],
                                                                 a["instance"]) or row["eta"] == 0
            assert row["r_star_closed"] == _linear_r_star(model, C, row["lam"])
            checked += 1
            if row["eta"] >= boundary:
                # Delta <= 0 at and past the boundary: no round corrects every label.
                assert row["delta"] <= 0
                assert row["r_star_closed"] is None and row["r_star_exact"] is None
                impossible += 1
            if row["eta"] == 0:
                assert row["r_star_closed"] == 0 == row["r_star_exact"]
        assert checked >= 5 and impossible >= 1
        for line in panel["lines"]:
            for eta, r in zip(line["eta"], line["r_star_closed"]):
                if eta >= boundary:
                    assert r is None


# ------------------------------------------------------------------------------- phase diagrams

def _run_phase(name, out):
    assert _figures("--only", name, "--out", str(out), "--quick") == 0
    doc = json.loads((out / f"{name}.json").read_text())
    _check_provenance(doc, name)
    _check_png(out / f"{name}.png")
    from sdtheory.sweep import read_csv

    results = []
    for entry in doc["csv"]:
        res = read_csv(out / entry["file"])
        assert res.version == sdtheory.__version__
        assert res.quantity == entry["quantity"] and res.max_rounds == entry["max_rounds"]
        assert not res.failed.any()
        results.append(res)
    return doc, results


def _cells(res, cfg):
    """(eta, model, counts, lam, iy, ix) of every cell of a phase result over eta and lam or d."""
    for iy, yv in enumerate(res.y_values):
        for ix, eta in enumerate(res.x_values):
            params = {"c": cfg["c"], "d": cfg["d"], "lam": cfg.get("lam", 1e-5)}
            params[res.y.name] = float(yv)
            model = sdtheory.two_level(cfg["K"], cfg["n"], params["c"], params["d"])
            counts = sdtheory.exact_counts(sdtheory.transition_matrix("sym", cfg["K"], eta),
                                           cfg["n"])
            yield float(eta), model, counts, params["lam"], iy, ix


@pytest.mark.parametrize("name", ["phase_eta_lam", "phase_eta_gap"])
def test_phase_r_star_closed_form_and_boundary(tmp_path, name):
    doc, (res,) = _run_phase(name, tmp_path)
    cfg = doc["config"]
    assert res.x.name == "eta" and res.y.name == ("lam" if name == "phase_eta_lam" else "d")
    assert doc["eta_boundary"] == (cfg["K"] - 1) / cfg["K"]
    closed = res.values["r_star_closed_form"]
    r_star = res.values["r_star"]
    n_impossible = 0
    for eta, model, counts, lam, iy, ix in _cells(res, cfg):
        expected = theory.r_star_theory(model, counts, lam)
        if expected is None:
            assert np.isnan(closed[iy, ix])
        else:
            assert closed[iy, ix] == expected
        if eta >= doc["eta_boundary"]:
            # 100% correction is impossible at and past the boundary: empty cells.
            assert np.isnan(r_star[iy, ix]) and np.isnan(closed[iy, ix])
            n_impossible += 1
        if eta == 0:
            assert r_star[iy, ix] == 0
    assert n_impossible >= res.y.count
    finite = r_star[np.isfinite(r_star)]
    assert finite.size and finite.max() <= res.max_rounds


def test_phase_pll_gain(tmp_path):
    doc, results = _run_phase("phase_pll", tmp_path)
    cfg = doc["config"]
    assert [r.max_rounds for r in results] == cfg["rounds_R"]
    for res in results:
        v = res.values
        np.testing.assert_allclose(v["pll_gain"], v["pll_acc"] - v["sd_best_acc"], atol=1e-12)
        for eta, model, counts, lam, iy, ix in _cells(res, cfg):
            if eta == 0 or eta >= doc["eta_boundary"]:
                continue
            ok, margins = theory.pll_conditions(model, counts, lam)
            if ok:
                # docs/theory.md section 6: one PLL round corrects every label.
                assert v["pll_acc"][iy, ix] == 1.0, (eta, lam, margins)
    # More SD rounds can only raise the best SD accuracy, so the gain can only fall with R.
    for a, b in zip(results, results[1:]):
        assert np.all(b.values["pll_gain"] <= a.values["pll_gain"] + 1e-12)
