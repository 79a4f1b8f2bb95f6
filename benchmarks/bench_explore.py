"""Responsiveness of `sdtheory explore`, measured in the browser (run: python
benchmarks/bench_explore.py [--repeats 5]; needs the explore and browser extras, chromium and
chromedriver).

A server (`sdtheory explore --no-browser`, its own compilation cache) and headless Chromium,
driven as in the browser tests (tests/browser.py). Each time runs from the key press that changes a
field (or the click on a cell) to the moment the browser holds the new view: a new diagram's
cell colours, or the new cell's table. After one warm-up of each kind (the first compilation):

1. linear solver, r*, 100 x 100 cells (eta 0..0.74 x lam 1e-6..1e-2 log), K = 4, n = 500;
   each change moves the upper end of eta. Goal: 0.5 s.
2. exact solver, r*, 40 x 40 cells over the same ranges, rounds 0..60. Goal: 3 s.
3. a click on a cell of the 40 x 40 diagram: `sdtheory simulate` rounds 0..60, exact and
   linearised, the PLL student, its figure and table. Goal: 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import machine

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sdtheory.explore import free_port  # noqa: E402
from tests.browser import Page, chromium  # noqa: E402


def _newest(page) -> int:
    """The number of the newest diagram the browser holds (-1: none)."""
    return page.d.execute_script("""
        let n = -1;
        for (const doc of window.Bokeh.documents) for (const m of doc.all_models)
          if (m.name && m.name.startsWith('sd-cells-')) n = Math.max(n, +m.name.slice(9));
        return n;""")


def _until(cond, timeout=300.0, poll=0.01):
    t_end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > t_end:
            raise TimeoutError("the page did not answer")
        time.sleep(poll)
    return time.perf_counter()


def redraw(page, key, value) -> float:
    """Seconds from the key press that sets ``key`` to the browser holding the new diagram."""
    n = _newest(page)
    t0 = time.perf_counter()
    page.type(key, value)
    return _until(lambda: _newest(page) > n) - t0


def click(page, dx, dy) -> float:
    """Seconds from a click at (dx, dy) from the diagram's centre to the new cell's table."""
    from selenium.webdriver.common.action_chains import ActionChains

    before = page.text(".sd-cell-command")
    (canvas, *_) = [c for c in page.all("canvas") if c.size["width"] > 300]
    t0 = time.perf_counter()
    ActionChains(page.d).move_to_element_with_offset(canvas, dx, dy).click().perform()
    t = _until(lambda: page.text(".sd-cell-command") not in ("", before), poll=0.005)
    cmd = page.text(".sd-cell-command")
    # the table follows the command in the same update; wait for it to name the new cell
    lam = cmd.split("--lam ")[1].split()[0]
    _until(lambda: f"lam={float(lam):g}" in page.text(".sd-cell-table"), poll=0.005)
    return t - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as cache:
        server = subprocess.Popen(
            [sys.executable, "-m", "sdtheory", "--quiet", "explore", "--no-browser", "--port",
             str(port)], env=dict(os.environ, SDTHEORY_JAX_CACHE=cache),
            stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        driver = chromium()
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            page = Page(driver)
            page.until_text(".sd-phase-command", lambda t: t.startswith("sdtheory phase"))
            print(machine())
            redraw(page, "x-count", "100")
            redraw(page, "y-count", "100")
            his = [f"{0.70 + 0.01 * i:.2f}" for i in range(args.repeats + 1)]
            times = [redraw(page, "x-hi", h) for h in his]
            print(f"linear 100 x 100, r*: first {times[0]:.3f} s; then "
                  + ", ".join(f"{t:.3f}" for t in times[1:])
                  + f" s (median {np.median(times[1:]):.3f} s)")
            redraw(page, "x-count", "40")
            redraw(page, "y-count", "40")
            page.select("solver", "exact")
            page.until_text(".sd-phase-status", lambda t: "40 x 40 cells, exact" in t)
            times = [redraw(page, "x-hi", h) for h in his]
            print(f"exact 40 x 40, rounds 0..60, r*: first {times[0]:.3f} s; then "
                  + ", ".join(f"{t:.3f}" for t in times[1:])
                  + f" s (median {np.median(times[1:]):.3f} s)")
            offsets = [(-120 + 40 * i, 60 - 25 * i) for i in range(args.repeats + 1)]
            times = [click(page, dx, dy) for dx, dy in offsets]
            print(f"cell view (rounds 0..60, exact + linear + PLL): first {times[0]:.3f} s; "
                  "then " + ", ".join(f"{t:.3f}" for t in times[1:])
                  + f" s (median {np.median(times[1:]):.3f} s)")
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
