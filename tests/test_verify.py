"""The verify harness: quick run passes, broken statements are caught with a counter-example."""

import json
import math
import sys

import numpy as np
import pytest

import sdtheory as sd
from sdtheory import theory as th
from sdtheory.cli import main
from sdtheory.jobs import verify
from sdtheory.jobs.verify import harness
from sdtheory.solvers import LinearSolver


def _verify(*, quick=True, only=None, list=False, json=False, out=None) -> int:
    """``sdtheory verify`` with these options, through the command's entry point."""
    argv = ["verify"] + (["--quick"] if quick else []) + (["--list"] if list else [])
    argv += ["--json"] if json else []
    for name in only or ():
        argv += ["--only", name]
    argv += ["--out", out] if out is not None else []
    return main(argv)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run of every check through the CLI entry point (table + verify.json)."""
    out = tmp_path_factory.mktemp("verify")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = _verify(out=str(out))
    return code, buf.getvalue(), json.loads((out / "verify.json").read_text())


def test_quick_mode_passes(quick_run):
    code, table, payload = quick_run
    assert code == 0, table
    assert payload["ok"] is True and payload["quick"] is True
    names = [c["name"] for c in payload["checks"]]
    for required in ("linear_fixed_point", "block_spectrum", "label_averaging", "collapse",
                     "delta_necessary", "r_star_closed_vs_linear", "r_star_exact_band",
                     "pll_conditions", "pll_beats_sd_high_noise", "eta_boundary",
                     "pll_unbalanced_low_noise", "pll_constant_cycle"):
        assert required in names
    for c in payload["checks"]:
        assert c["tried"] > 0 and c["passed"] == c["tried"], c
        assert c["counterexample"] is None and c["error"] is None
        assert c["worst_margin"] is None or c["worst_margin"] >= 0
    # the table has one row per check, then the summary line
    assert f"{len(names)}/{len(names)} checks passed" in table
    for name in names:
        assert any(line.startswith(name + " ") for line in table.splitlines())


def test_quick_mode_margins_are_the_stated_numbers(quick_run):
    _, _, payload = quick_run
    by = {c["name"]: c for c in payload["checks"]}
    # tolerance-type margins: tol - error, so they lie in (0, tol]
    assert 0 < by["linear_fixed_point"]["worst_margin"] <= 1e-12
    assert 0 < by["label_averaging"]["worst_margin"] <= 1e-10
    # distance of log(1 + 1/Delta)/log(a2/a3) from an integer: in (0, 1/2]
    assert 0 < by["r_star_closed_vs_linear"]["worst_margin"] <= 0.5


def _run_only(names, **kw):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = _verify(only=list(names), **kw)
    return code, buf.getvalue()


def test_wrong_r_star_formula_is_caught(monkeypatch, tmp_path):
    """r* + 1 in place of the closed form: the real check fails with a counter-example."""
    right = th.r_star_closed

    def off_by_one(delta_, a2, a3):
        r = right(delta_, a2, a3)
        return None if r is None else r + 1

    monkeypatch.setattr(th, "r_star_closed", off_by_one)
    code, table = _run_only(["r_star_closed_vs_linear"], out=str(tmp_path))
    assert code == 1
    assert "FAIL" in table and "counter-example:" in table
    payload = json.loads((tmp_path / "verify.json").read_text())
    (c,) = payload["checks"]
    assert c["ok"] is False and c["passed"] < c["tried"]
    ce = c["counterexample"]
    assert ce["r_closed"] == ce["r_linear_solver"] + 1 == ce["r_linear_formula"] + 1
    assert ce["margin"] == -1
    assert {"K", "n", "lam", "delta"} <= set(ce["params"])


def test_pll_check_refutes_always_safe(monkeypatch, tmp_path):
    """A pll_safe that calls every case safe with room (the reconstructed claim that one PLL
    round is safe at low noise) is refuted by the exact solver with a counter-example; and
    one that swaps safe and unsafe fails on both sides (random cases and balanced controls)."""
    right = th.pll_safe

    def always_safe(model, counts, lam, ties="split"):
        return True, {**right(model, counts, lam, ties)[1], "margin": 1.0, "cause": "safe"}

    monkeypatch.setattr(th, "pll_safe", always_safe)
    code, table = _run_only(["pll_unbalanced_low_noise"], out=str(tmp_path))
    assert code == 1 and "counter-example:" in table
    (c,) = json.loads((tmp_path / "verify.json").read_text())["checks"]
    ce = c["counterexample"]
    assert ce["params"]["noise"].startswith("random")
    assert ce["exact_min_margin"] < 0 and ce["pll_acc"] < 1 and c["worst_margin"] < 0

    def swapped(model, counts, lam, ties="split"):
        ok, info = right(model, counts, lam, ties)
        return not ok, {**info, "margin": -info["margin"]}

    monkeypatch.setattr(th, "pll_safe", swapped)
    code, _ = _run_only(["pll_unbalanced_low_noise"], out=str(tmp_path))
    (c,) = json.loads((tmp_path / "verify.json").read_text())["checks"]
    assert code == 1 and c["passed"] == 0 and c["tried"] > 0


def test_broken_statement_registered_by_decorator_is_caught(monkeypatch):
    """A check added through @check, with a3/a2 replaced by a2/a3: exit code 1."""
    monkeypatch.setattr(harness, "_REGISTRY", dict(harness._REGISTRY))

    @verify.check("broken_label_averaging", "ratio inst/class shrinks by a2/a3 (wrong)")
    def _broken(t):
        for K, lam in ((3, 1e-2), (4, 1e-3)):
            m = sd.two_level(K, 20, 0.4, 0.1)
            C = sd.exact_counts(sd.transition_matrix("sym", K, 0.3), 20)
            lin = LinearSolver(gram=m, labels=C, lam=lam)
            a = th.averaging_eigenvalues(m, lam)
            norms = []
            for r in (0, 1):
                Q = lin.round_outputs(r) - 1 / K
                parts = th.level_components(Q, lin.weight[0], lin.true)
                w = np.sqrt(lin.weight[0])[:, None]
                norms.append(np.linalg.norm(w * parts["instance"])
                             / np.linalg.norm(w * parts["class"]))
            err = abs(norms[1] / norms[0] / (a["class"] / a["instance"]) - 1)
            t.case({"K": K, "lam": lam}, 1e-10 - err, rel_err=err)

    code, table = _run_only(["broken_label_averaging"], json=True)
    assert code == 1
    payload = json.loads(table)
    (c,) = payload["checks"]
    assert c["tried"] == 2 and c["passed"] == 0
    assert c["counterexample"]["params"] == {"K": 3, "lam": 0.01}
    assert c["counterexample"]["rel_err"] > 0.5 and c["worst_margin"] < -0.5


def test_check_that_raises_is_a_failure(monkeypatch):
    monkeypatch.setattr(harness, "_REGISTRY", dict(harness._REGISTRY))

    @verify.check("crashes", "raises after one passing case")
    def _crash(t):
        t.case({"x": 1}, 1.0)
        raise RuntimeError("boom")

    (res,) = verify.run(["crashes"])
    assert not res.ok and res.error == "RuntimeError: boom" and res.tried == 1
    assert "error: RuntimeError: boom" in verify.format_table([res])


def test_check_with_no_case_is_not_a_pass(monkeypatch):
    monkeypatch.setattr(harness, "_REGISTRY", dict(harness._REGISTRY))
    verify.check("empty", "tries nothing")(lambda t: None)
    (res,) = verify.run(["empty"])
    assert not res.ok and res.tried == 0


def test_unknown_check_is_bad_input(capsys):
    assert _verify(only=["no_such_check"]) == 2
    assert "unknown check 'no_such_check'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown check"):
        verify.run(["no_such_check"])


def test_out_that_is_a_file_is_bad_input(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert _verify(only=["eta_boundary"], out=str(f)) == 2
    assert "not a directory" in capsys.readouterr().err


def test_list_prints_every_check(capsys):
    assert _verify(list=True) == 0
    out = capsys.readouterr().out
    for name in verify.checks():
        assert any(line.startswith(name + " ") for line in out.splitlines())


def test_duplicate_name_is_rejected(monkeypatch):
    monkeypatch.setattr(harness, "_REGISTRY", dict(harness._REGISTRY))
    with pytest.raises(ValueError, match="already registered"):
        verify.check("collapse", "again")(lambda t: None)
    with pytest.raises(ValueError, match="letters"):
        verify.check("bad name", "x")


def test_check_modules_register_on_import_and_import_errors_propagate(monkeypatch, tmp_path):
    monkeypatch.setattr(harness, "_REGISTRY", dict(harness._REGISTRY))
    (tmp_path / "extra_checks_for_test.py").write_text(
        "from sdtheory.jobs.verify import check\n"
        "@check('extra_from_module', 'registered on import')\n"
        "def _x(t):\n"
        "    t.case({'a': 1}, 0.25)\n")
    (tmp_path / "broken_checks_for_test.py").write_text("import sdtheory_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(harness, "CHECK_MODULES", ("extra_checks_for_test",))
    assert "extra_from_module" in verify.checks()
    (res,) = verify.run(["extra_from_module"])
    assert res.ok and res.worst_margin == 0.25
    # a module whose own import fails is an error, never silently skipped
    monkeypatch.setattr(harness, "CHECK_MODULES", ("broken_checks_for_test",))
    with pytest.raises(ModuleNotFoundError, match="sdtheory_missing_dependency"):
        verify.checks()
    sys.modules.pop("extra_checks_for_test", None)


def test_tally_records_first_counterexample_and_worst_margin():
    t = verify.Tally(quick=True)
    assert t.case({"a": 1}, 0.5)
    assert not t.case({"a": 2}, -0.1, x=np.float64(3.0))
    assert not t.case({"a": 3}, -0.7)
    assert t.case({"a": 4}, None, passed=True)
    assert (t.tried, t.passed, t.worst_margin) == (4, 2, -0.7)
    assert t.counterexample == {"params": {"a": 2}, "margin": -0.1, "x": 3.0}
    with pytest.raises(ValueError):
        t.case({"a": 5})


def test_json_of_non_finite_and_numpy_values():
    res = verify.CheckResult(name="x", statement="s", tried=1, passed=0,
                             worst_margin=-math.inf,
                             counterexample={"params": {"K": np.int64(3)},
                                             "v": np.array([1.0, np.nan])})
    d = json.loads(json.dumps(res.to_dict()))
    assert d["worst_margin"] == "-inf"
    assert d["counterexample"] == {"params": {"K": 3}, "v": [1.0, "nan"]}
