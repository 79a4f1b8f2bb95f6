"""sdtheory explore in a real browser: a server on a free port, driven by headless Chromium
with every host but 127.0.0.1 unreachable (a page that needed a CDN would not draw).

Needs Debian's chromium and chromium-driver (.ci/run installs them) and the explore and
browser extras (tests/browser.py). Without them the tests are skipped, except in CI (CI=true),
where they fail. SDTHEORY_SCREENSHOT=PATH also saves the page's screenshot there
(docs/explore.png).

Every test here is marked slow (a server process and a browser, about 20 s before the first
test); the fast set keeps the same behaviour in this process, through the page's own jobs:
tests/test_explore.py, test_cell_view_is_what_simulate_prints (a cell shown as simulate prints
it) and test_bad_input_gets_the_commands_message (a bad value gets the command's message at its
field).
"""

import os
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest

from sdtheory.cli import main
from sdtheory.explore import free_port, jobs
from tests.browser import Page, chromium, click_cell, expected_colours, missing, webdriver


@pytest.fixture(scope="module")
def server(side_cache):
    if webdriver is None:
        missing("the explore and browser extras (panel, selenium)")
    port = free_port()
    env = {**os.environ, "SDTHEORY_JAX_CACHE": str(side_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "sdtheory", "--quiet", "explore",
                             "--no-browser", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == f"sdtheory explore: serving http://127.0.0.1:{port}/ (Ctrl-C stops)"
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def page(server):
    driver = chromium()
    driver.get(server)
    p = Page(driver)
    # the form and both views drawn: each test may run alone (-k), not only after the first
    p.until_text(".sd-phase-command", lambda t: t.startswith("sdtheory phase"))
    p.until_text(".sd-cell-command", lambda t: t.startswith("sdtheory simulate"))
    yield p
    driver.quit()


def _cli_stdout(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_page_draws_offline_and_follows_the_controls(page, server):
    cmd = page.until_text(".sd-phase-command", lambda t: t.startswith("sdtheory phase"))
    assert cmd == jobs.command_line("phase", jobs.phase_argv({}))
    first = page.colours()
    assert first == expected_colours({})
    # every script and style sheet came from the server itself
    urls = page.d.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(server) for u in urls), urls
    # the quantity: accuracy at round R
    page.select("quantity", "acc_round_R")
    page.until_text(".sd-phase-command", lambda t: "--quantity acc_round_R" in t)
    form = {"quantity": "acc_round_R"}
    expected = expected_colours(form)
    page.wait.until(lambda _: page.colours() == expected)
    assert page.colours() != first
    # the axes: c from 0.15 to 0.9 against lam
    t0 = time.perf_counter()
    page.select("x", "c")
    page.type("x-lo", "0.15")
    page.type("x-hi", "0.9")
    form.update({"x": "c", "x-lo": "0.15", "x-hi": "0.9"})
    spec = "c:0.15:0.9:75"
    page.until_text(".sd-phase-command", lambda t: f"--x {spec} " in t)
    expected = expected_colours(form)
    page.wait.until(lambda _: page.colours() == expected)
    assert time.perf_counter() - t0 < 60
    assert len(set(expected)) > 1


@pytest.mark.slow
def test_click_shows_the_cell_as_simulate_prints_it(page, capsys):
    page.until_text(".sd-phase-command", lambda t: t.startswith("sdtheory phase"))
    argv = click_cell(page)
    status = page.text(".sd-cell-status")
    # the clicked values are grid values of the two axes
    phase = shlex.split(page.text(".sd-phase-command"))[2:]
    for axis in ("--x", "--y"):
        name, *_ = phase[phase.index(axis) + 1].split(":")
        grid = jobs.parse("phase", phase)
        values = __import__("sdtheory").sweep.Axis.parse(getattr(grid, axis[2:])).values
        v = float(argv[argv.index(f"--{name}") + 1])
        assert np.min(np.abs(values - v)) == 0.0, (name, v, status)
    # the table is what the command prints, character for character
    printed = _cli_stdout(capsys, ["simulate", *argv]).strip()
    page.until_text(".sd-cell-table", lambda t: t == printed)
    import json

    doc = json.loads(_cli_stdout(capsys, ["simulate", *argv, "--json"]))
    summary = page.until_text(".sd-cell-summary", lambda t: f"Delta{doc['delta']:.4f}" in t)
    assert f"Delta{doc['delta']:.4f}" in summary
    for name in ("exact", "linear"):
        r = doc["solvers"][name]["r_star"]
        assert f"{name} r*{'not reached' if r is None else r}" in summary


@pytest.mark.slow
def test_bad_value_gets_the_commands_message_at_its_field(page, capsys):
    page.until_text(".sd-phase-command", lambda t: t.startswith("sdtheory phase"))
    page.type("c", "abc")
    msg = page.until_text(".sd-error-c", lambda t: t != "")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["phase", "--c", "abc"])
    line = capsys.readouterr().err.strip()
    assert line == "sdtheory phase: error: argument --c: invalid float value: 'abc'"
    # the phase view's message, then (where the cell view is shown) the simulate command's
    assert msg in (line, line + line.replace("sdtheory phase:", "sdtheory simulate:")), msg
    assert page.text(".sd-error-lam") == ""
    page.type("c", "0.4")
    page.until_text(".sd-error-c", lambda t: t == "")
    # a value out of range: the library's check, the same line as the command's
    page.type("lam", "1e4")
    msg = page.until_text(".sd-error-lam", lambda t: t != "")
    line = ("sdtheory phase: error: lam must be a number in [1e-08, 1000] (the validated "
            "range), got 10000.0")
    assert msg in (line, line + line.replace("sdtheory phase:", "sdtheory simulate:")), msg
    page.type("lam", "1e-05")
    page.until_text(".sd-error-lam", lambda t: t == "")
    page.until_text(".sd-phase-status", lambda t: "cells" in t)


@pytest.mark.slow
def test_screenshot(page, tmp_path):
    """The page drawn (a diagram and a cell, K = 3 with its simplex): many colours, not a
    blank page."""
    page.select("quantity", "r_star")
    page.type("K", "3")
    page.until_text(".sd-cell-table", lambda t: " K=3 " in t)
    page.until_text(".sd-phase-command", lambda t: "--K 3 " in t and "r_star" in t)
    page.d.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    path = os.environ.get("SDTHEORY_SCREENSHOT") or str(tmp_path / "explore.png")
    assert page.d.save_screenshot(path)
    from matplotlib.image import imread

    img = imread(path)[..., :3]
    colours = np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert img.shape[0] > 1000 and len(colours) > 200
