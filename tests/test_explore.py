"""sdtheory explore without a browser: the page's views equal what the commands print and
write, bad values get the commands' messages, and newer requests supersede older ones."""

import asyncio
import json
import shlex
import threading
import time

import numpy as np
import pytest

from sdtheory import noise, theory
from sdtheory.cli import main
from sdtheory.explore import jobs

FORM = {"K": "3", "n": "60", "lam": "1e-4", "x": "eta", "x-lo": "0", "x-hi": "0.6",
        "x-count": "7", "y": "lam", "y-lo": "1e-5", "y-hi": "1e-2", "y-count": "4",
        "y-log": True, "max-rounds": "12"}


def _cli(capsys, command: str, argv: list[str]):
    """(exit code, stdout, stderr) of ``sdtheory COMMAND argv`` run in this process."""
    capsys.readouterr()
    try:
        rc = main([command, *argv])
    except SystemExit as stop:          # argparse's errors leave through SystemExit
        rc = stop.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("quantity,solver", [("r_star", "linear"), ("pll_gain", "exact")])
def test_phase_view_is_the_commands_csv(tmp_path, capsys, quantity, solver):
    form = {**FORM, "quantity": quantity, "solver": solver}
    view = jobs.compute_phase(form)
    assert view.command == "sdtheory phase " + shlex.join(view.argv)
    rc, out, _ = _cli(capsys, "phase", [*shlex.split(view.command)[2:], "--out",
                                        str(tmp_path)])
    assert rc == 0
    files = jobs.phase_files(view)
    csv_name, png_name = jobs.phase_file_names(view)
    assert out.split() == [str(tmp_path / csv_name), str(tmp_path / png_name)]
    # the download is the command's CSV byte for byte, and the PNG a PNG
    assert files[csv_name] == (tmp_path / csv_name).read_bytes()
    assert files[png_name][:8] == b"\x89PNG\r\n\x1a\n"


def test_phase_delta_and_its_zero_line():
    """Delta of every cell equals Delta of the corruption that simulate builds for it, and the
    Delta = 0 line of symmetric noise lies within one cell of eta = (K - 1) / K."""
    form = {**FORM, "x-hi": "0.9", "x-count": "19"}
    view = jobs.compute_phase(form)
    from sdtheory.jobs.simulate import SimConfig
    from sdtheory.problem import build_problem

    for ix, iy in [(0, 0), (5, 2), (13, 3), (18, 1)]:
        cell = jobs.cell_at(view, ix, iy)
        p = build_problem(SimConfig(K=3, n=60, eta=cell["eta"], lam=cell["lam"]))
        assert view.delta[iy, ix] == noise.delta(p.corruption.counts)
    from sdtheory.explore.figures import overlay_lines

    lines = overlay_lines(view)
    xs = np.concatenate([np.asarray(x) for x, _ in lines["delta0"]])
    step = 0.9 / 18
    assert np.all(np.abs(xs - theory.eta_boundary("sym", 3)) <= step)
    assert lines["r_star"] and lines["labels"]


def test_cell_view_is_what_simulate_prints(capsys):
    view = jobs.compute_phase(FORM)
    cell = jobs.cell_at(view, 3, 1)
    cv = jobs.compute_cell(FORM, cell)
    assert f"--eta {cell['eta']!r}" in cv.command and f"--lam {cell['lam']!r}" in cv.command
    rc, out, _ = _cli(capsys, "simulate", shlex.split(cv.command)[2:])
    assert rc == 0 and out.rstrip("\n") == cv.table
    rc, out, _ = _cli(capsys, "simulate", [*shlex.split(cv.command)[2:], "--json"])
    assert json.loads(jobs.cell_files(cv)["simulate.json"]) == json.loads(out)
    # a_j = mu_j / (mu_j + K N lam) of the two-level model's eigenvalues (docs/theory.md 4):
    # mu_instance = 1 - c, mu_class = mu_instance + n (c - d), mu_global = mu_class + K n d
    K, n, c, d, lam = 3, 60, 0.4, 0.1, cell["lam"]
    mu3 = 1 - c
    mu2 = mu3 + n * (c - d)
    mu1 = mu2 + K * n * d
    ref = {k: mu / (mu + K * K * n * lam) for k, mu in
           (("global", mu1), ("class", mu2), ("instance", mu3))}
    for k, v in ref.items():
        assert abs(cv.a[k] - v) <= 4e-16 * max(1.0, v) * 4


@pytest.mark.parametrize("change,field", [
    ({"c": "abc"}, "c"),                          # argparse's message
    ({"lam": "1e4"}, "lam"),                      # the form's own lam (swept cells replace it)
    ({"y-lo": "1e-12"}, "y-lo"),                  # a swept cell outside the validated range
    ({"x-lo": "abc"}, "x-lo"),                    # an axis that does not parse
    ({"x-count": "0"}, "x-count"),
    ({"d": "0.5"}, "d"),                          # c > d: both named, d second
    ({"y": "eta"}, "y"),                          # one parameter on both axes
    ({"model": "gmm"}, "model"),                  # phase refuses the Gaussian mixture
    ({"max-rounds": "-1"}, "max-rounds"),
])
def test_bad_input_gets_the_commands_message(capsys, change, field):
    form = {**FORM, **change}
    with pytest.raises(jobs.InputError) as info:
        jobs.compute_phase(form)
    err = info.value
    rc, out, stderr = _cli(capsys, "phase", [*jobs.phase_argv(form), "--out", "/nonexistent"])
    assert rc == 2 and out == ""
    assert err.message == stderr.strip() and "\n" not in err.message
    assert field in err.fields


def test_bad_cell_input_gets_simulates_message(capsys):
    form = {**FORM, "model": "gmm", "dim": "2"}
    with pytest.raises(jobs.InputError) as info:
        jobs.compute_cell(form)
    rc, _, stderr = _cli(capsys, "simulate", jobs.cell_argv(form))
    assert rc == 2 and info.value.message == stderr.strip()


def test_latest_supersedes_stale_requests():
    """Three requests in a row: the first runs and its result is dropped, the second is
    skipped before it starts, the third is returned."""
    pytest.importorskip("panel")
    from sdtheory.explore.app import Latest

    ran = []
    gate = threading.Event()

    def job(name, wait=False):
        def fn():
            ran.append(name)
            if wait:
                gate.wait(5)
            return name
        return fn

    async def scenario():
        runner = Latest()
        first = asyncio.ensure_future(runner.run(job("a", wait=True)))
        await asyncio.sleep(0.05)            # "a" is running
        second = asyncio.ensure_future(runner.run(job("b")))
        third = asyncio.ensure_future(runner.run(job("c")))
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await second, await third

    t0 = time.perf_counter()
    assert asyncio.run(scenario()) == (None, None, "c")
    assert ran == ["a", "c"] and time.perf_counter() - t0 < 5


def test_explore_command_help_and_bad_port(capsys):
    rc, _, err = _cli(capsys, "explore", ["--port", "70000"])
    assert rc == 2 and err.strip() == ("sdtheory explore: error: --port must be an integer in "
                                       "[1, 65535], got 70000")
    with pytest.raises(SystemExit):
        main(["explore", "--help"])
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--no-browser"):
        assert option in text


def test_port_in_use_is_one_line(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, out, err = _cli(capsys, "explore", ["--no-browser", "--port", str(port)])
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"sdtheory explore: error: --host/--port: cannot listen on "
                          f"127.0.0.1:{port}: ")


def test_core_package_does_not_import_panel():
    import subprocess
    import sys

    code = ("import sys, sdtheory as sd; sd.enable_x64(); from sdtheory.explore import jobs; "
            "jobs.compute_phase({'x-count': '3', 'y-count': '2'}); import sdtheory.cli.explore; "
            "print('panel' in sys.modules, 'bokeh' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_sd_explore_is_the_page_with_the_given_values():
    """sd.explore(...) (the notebook's entry) builds the served page's layout, its form
    holding the values given; an unknown field is refused by name."""
    pn = pytest.importorskip("panel")
    import sdtheory as sd

    layout = sd.explore(K=3, solver="exact")
    assert isinstance(layout, pn.layout.Column)
    values = {}
    for w in layout.select(pn.widgets.Widget):
        for cls in w.css_classes:
            if cls.startswith("sd-field-"):
                values[cls[len("sd-field-"):]] = w.value
    assert values == {**jobs.DEFAULTS, "K": "3", "solver": "exact"}
    with pytest.raises(ValueError, match="unknown field 'k'"):
        sd.explore(k=3)


def test_downloads_follow_the_newest_view():
    """The download buttons stay across views (new buttons relay the page out), and a click
    downloads the newest view's files: byte for byte those of its command."""
    import panel as pn

    from sdtheory.explore.app import Explorer

    page = Explorer(**FORM)

    async def scenario():
        await page.update_phase()
        first = list(page.phase_downloads.row.objects)
        page.values["x-hi"] = "0.5"
        await page.update_phase()
        return first

    first = asyncio.run(scenario())
    buttons = page.phase_downloads.row.objects
    assert buttons == first and all(isinstance(b, pn.widgets.FileDownload) for b in buttons)
    assert "0.5:7" in page.phase_view.command
    want = jobs.phase_files(jobs.compute_phase({**FORM, "x-hi": "0.5"}))
    assert {b.filename: b.callback().read() for b in buttons} == want


def test_cell_plot_keeps_its_figure_and_takes_the_new_cells_lines():
    """A second cell with the same lines (solvers, PLL students, K = 3 groups) keeps the
    figure and its lines hold the new cell's series (cell_series of simulate's document); a
    cell with other lines (K = 4: no simplex) gets a new figure."""
    from sdtheory.explore.app import Explorer
    from sdtheory.explore.figures import cell_series

    page = Explorer(**FORM)
    models = []

    async def scenario():
        for values, cell in [(FORM, None), (FORM, {"eta": 0.2, "lam": 1e-3}),
                             ({**FORM, "K": "4"}, None)]:
            page.values = {**jobs.DEFAULTS, **values}
            page.cell = cell
            await page.update_cell()
            models.append(page.cell_plot.object)
            if cell is not None:
                ser = cell_series(page.cell_view.doc)
                src = page.cell_plots.sources
                for k, (r, y) in ser["curves"].items():
                    np.testing.assert_array_equal(src["curve", k].data["x"], r)
                    np.testing.assert_array_equal(src["curve", k].data["y"], y)
                for k, (u, v) in ser["groups"].items():
                    np.testing.assert_array_equal(src["group", k].data["x"], u)
                    assert list(src["end", k].data["y"]) == [v[-1]]
                for k, a in ser["pll"].items():
                    assert list(src["pll", k].data["y"]) == [a]
                assert "η=0.2" in page.cell_plots.acc.title.text

    asyncio.run(scenario())
    assert models[0] is models[1] and models[2] is not models[1]
    assert len(models[1].children) == 2 and not hasattr(models[2], "children")
