"""Responsiveness of `sdtheory explore`, measured in the browser (run: python
benchmarks/bench_explore.py [--repeats 5]; needs the explore and browser extras, chromium and
chromedriver).

A server (`sdtheory explore --no-browser`, its own compilation cache) and headless Chromium,
driven as in the browser tests (tests/browser.py). Each time runs from the Enter key that
commits a field's new value (the text is typed before the clock starts), or from the release
of a click on a cell (the pointer already over it), to the moment the browser holds the new
view: a new diagram's cell colours, or the new cell's command. Both ends are read on the
page's own clock (performance.now()); the times with the driver's dispatch (WebDriver's
call, about 0.1 s, which a person's key press does not have) are printed beside them. After
one warm-up of each kind (the first compilation):

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

_CLOCK = """
if (!window._sdClock) {
  window._sdClock = true;
  // on the page's own clock (performance.now()): the last Enter key or pointer release
  // (capture: before any handler of the page), and when the page's models took a new
  // diagram or a new cell command (Bokeh's document events, also those from the server)
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter') window._sdT0 = performance.now(); }, true);
  document.addEventListener('pointerup', () => { window._sdT0 = performance.now(); }, true);
  for (const doc of window.Bokeh.documents) doc.on_change(ev => {
    const m = ev.model, now = performance.now();
    if (m == null) return;
    if (ev.attr === 'name' && m.name && m.name.startsWith('sd-cells-'))
      window._sdDiagram = [+m.name.slice(9), now];
    else if (ev.attr === 'text' && (m.css_classes || []).includes('sd-cell-command'))
      window._sdCell = [m.text, now];
  });
}"""


def _state(page, which):
    """(value, page time) of the page's newest diagram number or cell command."""
    return page.d.execute_script(f"return window._sd{which} || [null, 0];")


def _until(cond, timeout=300.0, poll=0.05):
    """Poll ``cond()`` (None: not yet) until it answers; returns its answer. The poll is
    slow: the answer's time comes from the page, and a busy poll would slow the page down."""
    t_end = time.perf_counter() + timeout
    while (out := cond()) is None:
        if time.perf_counter() > t_end:
            raise TimeoutError("the page did not answer")
        time.sleep(poll)
    return out


def _elapsed(page, t_page, t0) -> tuple[float, float]:
    """(in the page, with the driver): seconds from the page's own record of the key or click
    to its time ``t_page`` (ms) when its models held the answer; and from the driver's call at
    ``t0`` (perf_counter) to the same moment (the page's clock moved to the driver's)."""
    t_key, now = page.d.execute_script("return [window._sdT0, performance.now()];")
    return (t_page - t_key) / 1e3, time.perf_counter() - (now - t_page) / 1e3 - t0


def redraw(page, key, value) -> tuple[float, float]:
    """Seconds from the Enter key that commits ``key`` = ``value`` (typed beforehand) to the
    page's models holding the new diagram (:func:`_elapsed`)."""
    from selenium.webdriver.common.keys import Keys

    page.d.execute_script(_CLOCK)
    el = page.type(key, value, enter=False)
    n, _ = _state(page, "Diagram")
    t0 = time.perf_counter()
    el.send_keys(Keys.ENTER)
    t_page = _until(lambda: (lambda m, t: t if m != n else None)(*_state(page, "Diagram")))
    return _elapsed(page, t_page, t0)


def click(page, dx, dy) -> tuple[float, float]:
    """Seconds from a click at (dx, dy) from the diagram's centre (the pointer moved there
    beforehand, at once) to the page's models holding the new cell's command
    (:func:`_elapsed`); then waits for the cell's table."""
    from selenium.webdriver.common.action_chains import ActionChains

    page.d.execute_script(_CLOCK)
    before, _ = _state(page, "Cell")
    (canvas, *_) = [c for c in page.all("canvas") if c.size["width"] > 300]
    ActionChains(page.d, duration=0).move_to_element_with_offset(canvas, dx, dy).perform()
    t0 = time.perf_counter()
    ActionChains(page.d, duration=0).click().perform()
    t_page = _until(lambda: (lambda c, t: t if c != before else None)(*_state(page, "Cell")))
    out = _elapsed(page, t_page, t0)
    cmd = page.text(".sd-cell-command")
    # the table follows the command in the same update; wait for it to name the new cell
    lam = cmd.split("--lam ")[1].split()[0]
    _until(lambda: True if f"lam={float(lam):g}" in page.text(".sd-cell-table") else None)
    return out


def _report(what, times) -> None:
    page, driver = np.array(times).T
    print(f"{what}: in the page median {np.median(page[1:]):.3f} s ("
          + ", ".join(f"{t:.3f}" for t in page[1:]) + f"; first {page[0]:.3f} s); with the "
          f"driver's dispatch median {np.median(driver[1:]):.3f} s")


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
            _report("linear 100 x 100, r*", [redraw(page, "x-hi", h) for h in his])
            redraw(page, "x-count", "40")
            redraw(page, "y-count", "40")
            page.select("solver", "exact")
            page.until_text(".sd-phase-status", lambda t: "40 x 40 cells, exact" in t)
            _report("exact 40 x 40, rounds 0..60, r*", [redraw(page, "x-hi", h) for h in his])
            offsets = [(-120 + 40 * i, 60 - 25 * i) for i in range(args.repeats + 1)]
            _report("cell view (rounds 0..60, exact + linear + PLL)",
                    [click(page, dx, dy) for dx, dy in offsets])
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
