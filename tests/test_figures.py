"""Figures: config -> results file -> PNG, and the numbers the theory fixes in each results file.

Every figure runs with its ``[quick]`` settings into a temporary directory through the same
entry point as ``sdtheory figures`` (:func:`sdtheory.cli.main`).
"""

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

import sdtheory
from sdtheory import theory
from sdtheory.cli import main
from sdtheory.jobs import figures
from sdtheory.results import round_sig


def _figures(*argv) -> int:
    return main(["figures", *argv])


STORED = Path(__file__).parent / "data" / "figures_quick"


def _same_as_stored(out, name):
    """The results files of figure ``name`` (JSON, and the CSVs it lists) are byte for byte
    the stored ones of tests/data/figures_quick (written by ``sdtheory figures --quick``; see
    tests/data/PROVENANCE.md): the committed results do not depend on the CPU."""
    doc = json.loads((out / f"{name}.json").read_text())
    files = [f"{name}.json"] + [e["file"] for e in doc.get("csv", [])]
    if name == "probe_digits":
        files.append("probe_digits.csv")
    for f in files:
        assert (out / f).read_bytes() == (STORED / f).read_bytes(), f


def _run(name, out):
    """Run one figure with --quick into ``out``; return its results document, after checking
    that its results files are the stored bytes."""
    assert _figures("--only", name, "--out", str(out), "--quick") == 0
    path = out / f"{name}.json"
    assert path.is_file()
    _same_as_stored(out, name)
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
    rows = doc["solvers"]["exact"]
    last = rows[-1]["round"]
    for which in ("exact", "linear"):
        assert [r["round"] for r in doc["solvers"][which]] == list(range(last + 1))
    # The rounds run to the exact solver's r*: the last round is the first one with every
    # training label correct (strictly), clean and noisy.
    assert doc["r_star_exact"] == last <= cfg["max_rounds"]
    assert rows[-1]["train_acc_strict"] == rows[-1]["noisy_acc"] == 1.0
    assert all(r["train_acc_strict"] < 1.0 for r in rows[:-1])
    # The linearised students' r*: the first round of their rows with 100% (if within them).
    lin = doc["solvers"]["linear"]
    first = next((r["round"] for r in lin if r["train_acc_strict"] == 1.0), None)
    assert doc["r_star_linear"] is not None
    assert first == (doc["r_star_linear"] if doc["r_star_linear"] <= last else None)
    # lam = 1e-5: the teacher (nearly) interpolates its labels, so it is right on every clean
    # sample and wrong on every noisy one, in both solvers.
    for which in ("exact", "linear"):
        r0 = doc["solvers"][which][0]
        assert r0["clean_acc"] == 1.0 and r0["noisy_acc"] == 0.0
        assert r0["train_acc"] == pytest.approx(1.0 - doc["realised_noise_rate"], abs=1e-12)
    assert all(r["residual"] <= 1e-10 for r in rows)
    # The configured eps keeps G PSD, the requested one does not; the semicircle bound.
    N = cfg["K"] * cfg["n"]
    assert doc["min_eigenvalue"] > 0 > doc["min_eigenvalue_requested_eps"]
    assert doc["eps_psd_bound"] == pytest.approx((1 - cfg["c"]) / (2 * np.sqrt(N / 3)))
    assert cfg["eps"] <= doc["eps_psd_bound"] < cfg["eps_requested"]
    assert doc["delta"] == pytest.approx(sdtheory.delta(doc["counts"]))


def test_results_precision(approximation, label_averaging):
    """Floats are written to the precision stated in the file: certificates as the bound they
    met (the same on every CPU), solver-computed numbers 6 significant digits, other values
    10."""
    from sdtheory.results import CERT_BOUND

    for _, doc in (approximation, label_averaging):
        prec = doc["precision"]
        assert (prec["certificate"]["bound_met"], prec["computed"]["digits"],
                prec["value"]["digits"]) == (CERT_BOUND, 6, 10)
        assert "residual" in prec["certificate"]["keys"]
        assert "min_eigenvalue" in prec["computed"]["keys"]
    _, doc = approximation
    assert all(r["residual"] == CERT_BOUND for r in doc["solvers"]["exact"])
    for v in doc["max_abs_output_gap"] + [doc["min_eigenvalue"]]:
        assert v == float(f"{v:.5e}")
    _, doc = label_averaging
    for P in doc["outputs"].values():
        assert all(v == float(f"{v:.5e}") for row in P for v in row)
    assert all(v == float(f"{v:.9e}") for v in doc["shrink"]["closed_form"]["class"])


def test_round_sig():
    assert round_sig(0.006000000000000005, 10) == 0.006
    assert round_sig(5.0906e-12, 2) == 5.1e-12
    assert round_sig(np.array([[1 / 3, 2.0]]), 3) == [[0.333, 2.0]]
    assert round_sig(7, 2) == 7 and round_sig(None, 2) is None
    assert np.isnan(round_sig(float("nan"), 2)) and round_sig(0.0, 3) == 0.0
    with pytest.raises(ValueError):
        round_sig(1.0, 0)


def test_phase_csv_precision(tmp_path):
    doc, (res,) = _run_phase("phase_eta_lam", tmp_path)
    first = (tmp_path / "phase_eta_lam.csv").read_text().splitlines()[0]
    meta = json.loads(first[len("# sdtheory phase "):])
    from sdtheory.results import CERT_BOUND

    assert meta["precision"]["significant_digits"] == {"certificate": 2}
    assert meta["precision"]["bound_met"] == {"certificate": CERT_BOUND}
    assert set(meta["precision"]["exact"]) == {"eta", "lam", "r_star", "r_star_closed_form",
                                               "fragile"}
    # every cell's certificate met the bound: the column holds the bound, not the round-off
    assert np.all(res.values["certificate"] <= CERT_BOUND)
    written = [ln.split(",")[3] for ln in
               (tmp_path / "phase_eta_lam.csv").read_text().splitlines()[2:]]
    assert set(written) == {repr(CERT_BOUND)}


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
        # written to 10 significant digits (the results file's "precision")
        np.testing.assert_allclose(doc["shrink"]["closed_form"][name], expected, rtol=1e-9)
        assert doc["mu"][name] == pytest.approx(m, rel=1e-9)


def test_label_averaging_outputs(label_averaging):
    _, doc = label_averaging
    cfg = doc["config"]
    true, given = np.asarray(doc["true"]), np.asarray(doc["given"])
    assert true.size == cfg["K"] * cfg["n"] and np.any(true != given)
    assert list(doc["outputs"]) == [str(r) for r in cfg["rounds_shown"]]
    for P in doc["outputs"].values():
        P = np.asarray(P)
        assert P.shape == (true.size, cfg["K"])
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)     # stored to 6 digits
    assert doc["min_eigenvalue"] > 0


def test_label_averaging_shrink_measured_without_jitter(label_averaging):
    """The measured shrink of the exact outputs on the pure block model follows a_j^(r+1)
    (docs/theory.md section 4: the exact solver is not linear, so within 10%), the jittered
    one is reported separately; the global level has no label signal (every label given n
    times) and no measured curve."""
    _, doc = label_averaging
    sh = doc["shrink"]
    assert doc["label_signal"]["global"] == pytest.approx(0.0, abs=1e-12)
    assert set(sh["exact_measured"]) == set(sh["exact_measured_jittered"]) == {"class",
                                                                               "instance"}
    for name, vals in sh["exact_measured"].items():
        np.testing.assert_allclose(vals, sh["closed_form"][name], rtol=0.1)
    # instance directions die much faster than class directions
    inst, cls = sh["exact_measured"]["instance"], sh["exact_measured"]["class"]
    assert inst[-1] / inst[0] < 0.25 * cls[-1] / cls[0]
    assert doc["residual"] <= 1e-10


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
    _same_as_stored(out, name)
    doc = json.loads((out / f"{name}.json").read_text())
    _check_provenance(doc, name)
    _check_png(out / f"{name}.png")
    from sdtheory.results import read_phase_csv as read_csv

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


# ------------------------------------------------------------------------------- rendering checks

def _capture(monkeypatch):
    """Keep the matplotlib figures that the figure functions save (to read their pixels)."""
    from sdtheory.plots import figures as plots

    kept = []
    orig = plots.save

    def save(fig, png):
        kept.append(fig)
        orig(fig, png)

    monkeypatch.setattr(plots, "save", save)
    return kept


def _render(fig) -> np.ndarray:
    """The figure drawn at its own size: (H, W, 4) uint8 RGBA."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)          # (a closed pyplot figure has lost its canvas)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _at(buf, ax, x, y) -> tuple:
    """RGB (0-255) of a rendered figure (:func:`_render`) at data point (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    return tuple(int(v) for v in buf[int(buf.shape[0] - py), int(px), :3])


def _synthetic(x, y, data, quantity="r_star", max_rounds=60):
    """A PhaseResult over the axes specs ``x`` and ``y`` with the given quantity values."""
    from sdtheory.jobs.sweep import Axis
    from sdtheory.jobs.sweep.result import PhaseResult

    xa, ya = Axis.parse(x), Axis.parse(y)
    data = np.asarray(data, dtype=float).reshape(ya.count, xa.count)
    values = {quantity: data, "r_star_closed_form": data.copy()}
    cfg = {"K": 4, "n": 500, "c": 0.4, "d": 0.1, "noise": "sym", "model": "block",
           "x": xa.spec, "y": ya.spec, "quantity": quantity, "solver": "linear",
           "max_rounds": max_rounds}
    return PhaseResult(x=xa, y=ya, quantity=quantity, solver="linear",
                       max_rounds=max_rounds, values=values, config=cfg,
                       version=sdtheory.__version__)


def test_cell_edges_single_and_several_values():
    from sdtheory.jobs.sweep import Axis
    from sdtheory.plots.phase import cell_edges

    np.testing.assert_allclose(cell_edges(Axis.parse("eta:0.5:0.5:1")), [0.25, 0.75])
    np.testing.assert_allclose(cell_edges(Axis.parse("eta:0:0:1")), [-0.5, 0.5])
    np.testing.assert_allclose(cell_edges(Axis.parse("lam:1e-4:1e-4:1:log")),
                               [1e-4 / np.sqrt(10), 1e-4 * np.sqrt(10)], rtol=1e-12)
    np.testing.assert_allclose(cell_edges(Axis.parse("lam:1e-4:1e-4:1")), [5e-5, 1.5e-4])
    np.testing.assert_allclose(cell_edges(Axis.parse("eta:0:0.2:3")), [-0.05, 0.05, 0.15, 0.25])
    np.testing.assert_allclose(cell_edges(Axis.parse("lam:1e-5:1e-3:3:log")),
                               10.0 ** np.array([-5.5, -4.5, -3.5, -2.5]), rtol=1e-12)


def test_r_star_colour_bins():
    """r* is coloured in bins 0, 1, 2, 3-4, 5-8, ...: r* = 0 and 1 differ, r* = 3 and 4 share
    a colour, and 'not reached' (R + 1) is pure white."""
    from sdtheory.plots.phase import r_star_bins, r_star_colors

    assert r_star_bins(60) == [(0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32),
                               (33, 60)]
    assert r_star_bins(10)[-1] == (9, 10) and r_star_bins(0) == [(0, 0)]
    cmap, norm, ticks, labels = r_star_colors(60)
    rgb = {r: tuple(np.round(np.asarray(cmap(norm(r))[:3]) * 255).astype(int))
           for r in (0, 1, 2, 3, 4, 5, 60, 61)}
    assert len({rgb[0], rgb[1], rgb[2], rgb[3], rgb[5], rgb[60]}) == 6
    assert rgb[3] == rgb[4]
    assert rgb[61] == (255, 255, 255)
    assert labels[:5] == ["0", "1", "2", "3–4", "5–8"] and labels[-1] == "not\nreached"
    assert len(ticks) == len(labels)


@pytest.mark.parametrize("x, y", [("eta:0:0.7:8", "lam:1e-4:1e-4:1"),
                                  ("eta:0.5:0.5:1", "lam:1e-6:1e-2:5:log"),
                                  ("eta:0.5:0.5:1", "lam:1e-4:1e-4:1:log")])
@pytest.mark.parametrize("solver", ["linear", "exact"])
def test_phase_cli_one_row_or_column(tmp_path, capsys, x, y, solver):
    """A one-row, one-column or one-cell grid writes CSV and PNG (no contour needs 2 x 2)."""
    from sdtheory.plots.phase import r_star_colors
    from sdtheory.results import read_phase_csv as read_csv

    out = tmp_path / "o"
    rc = main(["phase", "--n", "50", "--x", x, "--y", y, "--max-rounds", "8", "--solver",
               solver, "--out", str(out)])
    assert rc == 0
    png = out / "phase_r_star_eta_lam.png"
    _check_png(png, min_w=500, min_h=400)
    res = read_csv(out / "phase_r_star_eta_lam.csv")
    assert res.data.shape == (Axis_count(y), Axis_count(x))
    # The PNG shows the cells in their colours: every cell's colour appears in the image.
    img = np.round(mpimg.imread(png)[..., :3] * 255).astype(int).reshape(-1, 3)
    colours = {tuple(c) for c in img}
    cmap, norm, _, _ = r_star_colors(8)
    for v in np.unique(np.where(np.isnan(res.data), 9.0, res.data)):
        want = tuple(np.round(np.asarray(cmap(norm(v))[:3]) * 255).astype(int))
        assert want in colours, (v, want)


def Axis_count(spec: str) -> int:
    return int(spec.split(":")[3])


def test_plot_phase_single_cell_colours(tmp_path):
    """1 x 1, 1 x 2 and 2 x 1 grids render their cells in the r* colours, r* = 0 and r* = 1
    in different colours, and r* = NaN (not reached) pure white."""
    from sdtheory.plots.phase import plot_phase, r_star_colors

    cmap, norm, _, _ = r_star_colors(60)

    def rgb(v):
        return tuple(np.round(np.asarray(cmap(norm(v))[:3]) * 255).astype(int))

    for x, y, data in [("eta:0.5:0.5:1", "lam:1e-4:1e-4:1:log", [1.0]),
                       ("eta:0.2:0.6:3", "lam:1e-4:1e-4:1:log", [0.0, 1.0, np.nan]),
                       ("eta:0.5:0.5:1", "lam:1e-5:1e-3:2:log", [0.0, 1.0])]:
        res = _synthetic(x, y, data)
        fig = plot_phase(res, tmp_path / "p.png", overlay_closed_form_levels=True)
        _check_png(tmp_path / "p.png", min_w=500, min_h=400)
        ax, buf = fig.axes[0], _render(fig)
        for iy, yv in enumerate(res.y_values):
            for ix, xv in enumerate(res.x_values):
                v = res.data[iy, ix]
                got = _at(buf, ax, xv, yv)
                assert got == (rgb(61) if np.isnan(v) else rgb(v)), (x, y, v, got)
    assert rgb(0) != rgb(1) and rgb(61) == (255, 255, 255)


def test_plot_phase_pll_gain_zero_is_white(tmp_path):
    from sdtheory.plots.phase import plot_phase

    res = _synthetic("eta:0.1:0.5:3", "lam:1e-5:1e-3:2:log", [0.0, 0.01, -0.2, 0.3, 0.0, 0.0],
                     quantity="pll_gain", max_rounds=2)
    fig = plot_phase(res, tmp_path / "g.png")
    ax, buf = fig.axes[0], _render(fig)
    assert _at(buf, ax, 0.1, 1e-5) == (255, 255, 255)
    small = _at(buf, ax, 0.3, 1e-5)                    # gain 0.01: visibly blue, not white
    assert small != (255, 255, 255) and small[2] > small[0]
    neg = _at(buf, ax, 0.5, 1e-5)
    assert neg[0] > neg[2]


def test_phase_pll_figure_zero_cells_pure_white(tmp_path, monkeypatch):
    kept = _capture(monkeypatch)
    doc, results = _run_phase("phase_pll", tmp_path)
    fig = kept[-1]
    buf = _render(fig)
    for ax, res in zip(fig.axes, results):
        zero = np.argwhere(res.data == 0.0)
        assert zero.size                                  # eta = 0: both 100% correct
        for iy, ix in zero:
            assert _at(buf, ax, res.x_values[ix], res.y_values[iy]) == (255, 255, 255)
        pos = np.argwhere(res.data > 0)
        assert pos.size
        for iy, ix in pos:
            assert _at(buf, ax, res.x_values[ix], res.y_values[iy]) != (255, 255, 255)


# ------------------------------------------------------------------------------- coinciding curves

def test_identical_groups_and_ranges():
    from sdtheory.plots.figures import identical_groups, round_ranges

    curves = np.array([[1, 0.5, np.nan], [1, 0.5, np.nan], [1, 0.6, 0.2], [1, 0.5, np.nan]])
    assert identical_groups(curves) == [[0, 1, 3], [2]]
    assert round_ranges([0, 1, 2, 4]) == "0–2, 4" and round_ranges([3]) == "3"


def test_pll_vs_sd_legend_merges_identical_rounds(tmp_path, monkeypatch):
    """Rounds whose accuracy curves are equal get one line and one legend entry."""
    from sdtheory.plots.figures import identical_groups

    kept = _capture(monkeypatch)
    doc = _run("pll_vs_sd", tmp_path)
    fig = kept[-1]
    for ax, panel in zip(fig.axes, doc["panels"]):
        sd = np.array([row["sd"] for row in panel["rows"]], dtype=float)
        groups = identical_groups(sd.T)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(labels) == len(groups) < sd.shape[1]       # quick settings: some coincide
        merged = [lb for lb in labels if "(identical)" in lb]
        assert len(merged) == sum(len(g) > 1 for g in groups) >= 1


def test_min_rounds_marks_coinciding_lams(min_rounds, tmp_path, monkeypatch):
    """Different lam get different line styles and markers; lams with equal r* over a range
    of eta are named in a note."""
    from sdtheory.plots.figures import plot_min_rounds

    out, doc = min_rounds
    kept = _capture(monkeypatch)
    full = dict(doc)
    # Two lams whose r* coincide at every eta: copy the quick panel's lam under another value.
    for panel in full["panels"]:
        lam2 = panel["lines"][0]["lam"] * 10
        panel["lines"] = panel["lines"] + [dict(panel["lines"][0], lam=lam2)]
        panel["rows"] = panel["rows"] + [dict(r, lam=lam2) for r in panel["rows"]]
    path = tmp_path / "min_rounds.json"
    path.write_text(json.dumps(full))
    plot_min_rounds(path, tmp_path / "m.png")
    ax = kept[-1].axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label().endswith("closed form")]
    assert len({ln.get_linestyle() for ln in lines}) == len(lines) == 2
    marks = [ln for ln in ax.get_lines() if "exact solver" in ln.get_label()]
    assert len({(m.get_marker(), m.get_markersize()) for m in marks}) == 2
    texts = [t.get_text() for t in ax.texts]
    assert any("identical" in t for t in texts)


# ------------------------------------------------------------------------------- probe_digits

@pytest.mark.slow
def test_probe_digits_figure(tmp_path):
    """The real-data figure (quick: symmetric noise, eta 0 and 0.5, one seed, rounds 0-1):
    both PNGs, the experiment recorded, certified trainings, gains = student - teacher, and the
    CSV holding the JSON's rows."""
    from sdtheory.results import read_probe_csv as read_csv

    doc = _run("probe_digits", tmp_path)
    _check_png(tmp_path / "probe_digits.png")
    _check_png(tmp_path / "probe_digits_correlation.png", min_w=400)
    assert doc["figure"] == "probe_digits" and doc["version"] == sdtheory.__version__
    assert doc["experiment"] == figures.load_config("probe_digits", quick=True)
    exp, cfg = doc["experiment"], doc["config"]
    assert (cfg["dataset"], cfg["feature_map"], cfg["lam"], cfg["rounds"]) == \
           (exp["dataset"], exp["feature_map"], exp["lam"], exp["rounds"])
    assert doc["data"] == {**doc["data"], "N": 1257, "M": 540, "D": 1280, "K": 10}
    rows = doc["rows"]
    assert len(rows) == len(exp["rates"]) * len(exp["seeds"]) * (exp["rounds"] + 2)
    assert max(r["certificate"] for r in rows) <= 1e-10
    by = {(r["eta"], r["round"]): r for r in rows}
    assert by[(0.0, "0")]["realised_rate"] == 0.0 and by[(0.0, "0")]["acc_given"] == \
        by[(0.0, "0")]["acc_true"]
    assert 0.4 < by[(0.5, "0")]["realised_rate"] < 0.6
    g = doc["gains"]["sym"]
    for i, eta in enumerate(g["eta"]):
        for label, key in (("t=1", "1"), ("pll", "pll")):
            want = by[(eta, key)]["test_acc"] - by[(eta, "0")]["test_acc"]
            assert abs(g[label][0][i] - want) <= 1e-9
            assert g[label][1][i] == 0.0                      # one seed: no spread
    config, csv_rows = read_csv(tmp_path / "probe_digits.csv")
    assert config == cfg
    assert [r["test_acc"] for r in csv_rows] == pytest.approx([r["test_acc"] for r in rows],
                                                              abs=1e-9)


# --------------------------------------------------------------------- relation_distillation

def test_relation_distillation_figure(tmp_path):
    """Quick settings: PNG and provenance; every relation-guided run starts from the same
    teacher as plain SD (round 0 identical); the relation's purity grows with the view's snr;
    at eta = 0 every method keeps the clean labels."""
    doc = _run("relation_distillation", tmp_path)
    _check_png(tmp_path / "relation_distillation.png")
    _check_provenance(doc, "relation_distillation")
    for entry in doc["by_eta"] + doc["by_snr"]:
        for s in entry["seeds"]:
            for accs in s["relation"].values():
                assert accs[0] == s["sd"][0] and len(accs) == doc["config"]["rounds"] + 1
    pur = [np.mean([s["purity"] for s in e["seeds"]]) for e in doc["by_snr"]]
    assert pur[-1] > pur[0] + 0.2
    clean = doc["by_eta"][0]
    assert clean["eta"] == 0.0
    assert all(min(s["sd"]) >= 0.98 for s in clean["seeds"])


# ------------------------------------------------------------------------------- optimize_eta

def test_optimize_eta_figure(tmp_path):
    """Quick settings: PNG and provenance; each optimum equals a fresh optimisation's margin
    at the reported (lam, alpha) (the closed form evaluated again), and later rounds reach at
    least the margin of round 0 (the optimum of round r >= 1 includes the teacher's lam with
    alpha = 1)."""
    import math

    from sdtheory.jobs.optimize import MarginModel
    from sdtheory.problem import ProblemConfig, build_problem

    doc = _run("optimize_eta", tmp_path)
    _check_png(tmp_path / "optimize_eta.png")
    _check_provenance(doc, "optimize_eta")
    cfg = doc["config"]
    for row in doc["rows"]:
        p = build_problem(ProblemConfig(K=cfg["K"], n=cfg["n"], c=cfg["c"], d=cfg["d"],
                                        noise=cfg["noise"], eta=row["eta"]))
        mm = MarginModel(p.model, p.corruption.counts)
        digits = doc["precision"]["computed"]["digits"]
        assert "optima" in doc["precision"]["computed"]["keys"]
        for o in row["optima"]:
            m = float(mm.margin(math.log(o["lam"]), o["label_weight"], o["round"]))
            # the optimum is written to `digits` significant digits: the margin at the
            # written lam and alpha is within two units of the last digit of the written
            # margin (at an interior optimum the rounding of lam moves it by far less)
            assert abs(m - o["margin"]) <= 2 * 10.0 ** (1 - digits) * abs(o["margin"])
        assert all(o["margin"] >= row["optima"][0]["margin"] - 1e-9 for o in row["optima"])


# ---------------------------------------------------------------------- ridge_sd_proportional

def test_ridge_sd_proportional_figure(tmp_path):
    """Quick settings: PNG and provenance; each curve point equals a fresh closed form (the
    results file rounds to 10 digits), xi* changes sign at the optimal ridge gamma sigma^2 /
    r^2 where the gain is smallest; the finite samples are within 4 standard errors of the
    closed form."""
    from sdtheory.kernel_ridge import ridge_sd_risk

    doc = _run("ridge_sd_proportional", tmp_path)
    _check_png(tmp_path / "ridge_sd_proportional.png")
    _check_provenance(doc, "ridge_sd_proportional")
    cfg = doc["config"]
    assert {c["design"] for c in doc["curves"]} == {"orthogonal", "gaussian"}
    for c in doc["curves"]:
        lam = np.array(c["lam"])
        for i in (0, lam.size // 2, lam.size - 1):
            ref = ridge_sd_risk(lam[i], c["gamma"], r2=cfg["r2"], sigma2=cfg["sigma2"],
                                design=c["design"])
            assert c["xi_star"][i] == pytest.approx(ref.xi_star, rel=1e-9)
            assert c["gain"][i] == pytest.approx(ref.gain, rel=1e-9)
        opt = c["gamma"] * cfg["sigma2"] / cfg["r2"]
        xi = np.array(c["xi_star"])
        assert np.all(xi[lam < opt] > 0) and np.all(xi[lam > opt] < 0)
    for smp in doc["samples"]:
        assert max(abs(v) for v in smp["z"].values()) < 4


@pytest.mark.slow
def test_every_quick_figure_gives_the_stored_bytes(tmp_path):
    """``sdtheory figures --quick`` (all figures, one run) writes every results file byte for
    byte as stored (the fast tests check each figure they run; this one also covers
    phase_eta_gap)."""
    assert _figures("--out", str(tmp_path), "--quick") == 0
    stored = sorted(p.name for p in STORED.iterdir())
    written = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".json", ".csv"))
    assert written == stored
    for name in stored:
        assert (tmp_path / name).read_bytes() == (STORED / name).read_bytes(), name


def test_a_figure_made_beside_the_others_gives_the_same_bytes(tmp_path, caplog):
    """run_figures with ``beside``: min_rounds is made by a second ``sdtheory figures``
    process while label_averaging is made here; both results files are the stored bytes, the
    per-figure lines name the moved files, and the hidden folder is gone."""
    import logging

    with caplog.at_level(logging.DEBUG, logger="sdtheory.jobs.figures"):
        figures.run_figures(["min_rounds", "label_averaging"], tmp_path, quick=True,
                            beside=["min_rounds"])
    for name in ("min_rounds.json", "label_averaging.json"):
        assert (tmp_path / name).read_bytes() == (STORED / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "label_averaging.json", "label_averaging.png", "min_rounds.json", "min_rounds.png"]
    lines = [r.getMessage() for r in caplog.records]
    assert any(ln.startswith("min_rounds") and "made beside the other figures" in ln
               for ln in lines), lines
    done = [ln for ln in lines if "done ->" in ln]
    assert [ln.split()[0] for ln in done] == ["label_averaging", "min_rounds"], done
    assert done[1].endswith(f"{tmp_path / 'min_rounds.json'}, {tmp_path / 'min_rounds.png'}")


def test_a_failed_figure_beside_the_others_names_its_exit(tmp_path, monkeypatch):
    """The second process exits with an error: FigureFailed names the figure, the exit code
    and its last line; nothing of it is left in the output folder."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'sdtheory figures: min_rounds failed: no luck' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(figures.sys, "executable", str(fake))
    out = tmp_path / "out"
    with pytest.raises(figures.FigureFailed) as err:
        figures.run_figures(["min_rounds", "label_averaging"], out, quick=True,
                            beside=["min_rounds"])
    assert err.value.name == "min_rounds"
    assert "exited with 1: sdtheory figures: min_rounds failed: no luck" in str(err.value)
    assert not (out / ".beside").exists()
