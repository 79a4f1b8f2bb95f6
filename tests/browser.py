"""Headless Chromium for the explorer's browser tests (tests/test_explore_browser.py, the
served page; tests/test_explore_notebook.py, the notebook exported to HTML): every host but
127.0.0.1 unreachable, so a page that needed a CDN would not draw.

Needs Debian's chromium and chromium-driver (.ci/run installs them) and the explore and
browser extras. Without them the tests are skipped, except in CI (CI=true), where they fail.
"""

import os
import shlex
import shutil

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

try:
    import panel  # noqa: F401
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    webdriver = None


def missing(what: str):
    """Skip (fail in CI) for want of ``what``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need {what} (CI installs it: .ci/run)")
    pytest.skip(f"the browser tests need {what}")


def chromium():
    """A headless Chromium driver that reaches no host but 127.0.0.1 (and file: URLs)."""
    if webdriver is None:
        missing("the explore and browser extras (panel, selenium)")
    if not (CHROMIUM and DRIVER):
        missing("chromium and chromedriver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1300,1750",
              # every host but the server unreachable: the page must need no network
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
              "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


# elements live in shadow roots: search them all
_JS = """
function walk(root, css, out) {
  root.querySelectorAll(css).forEach(e => out.push(e));
  for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot, css, out);
  return out;
}
function deepText(e) {
  let t = e.shadowRoot ? deepText(e.shadowRoot) : '';
  for (const c of e.childNodes)
    if (c.nodeType === 3) t += c.textContent;
    else if (c.nodeType === 1 && !['STYLE', 'SCRIPT'].includes(c.tagName)) t += deepText(c);
  return t;
}
"""


class Page:
    def __init__(self, driver):
        self.d = driver
        self.wait = WebDriverWait(driver, 120, poll_frequency=0.1)

    def all(self, css):
        return self.d.execute_script(_JS + "return walk(document, arguments[0], []);", css)

    def text(self, css, last=False) -> str:
        """The text of the first element matching ``css`` (``last``: of the last one)."""
        return self.d.execute_script(_JS + "const e = walk(document, arguments[0], []);"
                                     "return e.length ? deepText(e[arguments[1] ? e.length - 1"
                                     " : 0]) : '';", css, last).strip()

    def until_text(self, css, cond):
        self.wait.until(lambda _: cond(self.text(css)))
        return self.text(css)

    def colours(self):
        """The fill colours of the diagram's cells, as the browser holds them (the newest
        diagram's)."""
        return self.d.execute_script("""
            let best = null, n = -1;
            for (const doc of window.Bokeh.documents) for (const m of doc.all_models) {
              const k = m.name && m.name.startsWith('sd-cells-') ? +m.name.slice(9) : -1;
              if (k > n) { n = k; best = m; }
            }
            if (!best) return null;
            for (const doc of window.Bokeh.documents) for (const m of doc.all_models)
              if (m.name === 'sd-palette')
                return Array.from(best.data.index, i => m.palette[i]);
            return null;""")

    def field(self, key):
        """The text input of form field ``key``."""
        return self.d.execute_script(_JS + "const h = walk(document, arguments[0], [])[0];"
                                     "return walk(h.shadowRoot || h, 'input', [])[0];",
                                     f".sd-field-{key}")

    def type(self, key, value, enter=True):
        """Replace field ``key``'s text by ``value`` and commit it with Enter (``enter``
        False: not yet); returns the input."""
        el = self.field(key)
        el.send_keys(Keys.END, *[Keys.BACKSPACE] * len(el.get_attribute("value")), value,
                     *([Keys.ENTER] if enter else []))
        return el

    def select(self, key, value):
        el = self.d.execute_script(_JS + "const h = walk(document, arguments[0], [])[0];"
                                   "return walk(h.shadowRoot || h, 'select', [])[0];",
                                   f".sd-field-{key}")
        Select(el).select_by_value(value)


def expected_colours(form):
    """The diagram's cell colours for ``form``, computed by the phase command's code."""
    from sdtheory.explore.app import _fill_colours
    from sdtheory.explore.jobs import compute_phase

    return _fill_colours(compute_phase(form).result)


def click_cell(page) -> list[str]:
    """Click the diagram (60 px left of its canvas's centre, 40 px below) once the cell view
    shows a cell, and wait for the status line's "clicked cell" and the new cell's command:
    that command's arguments (after ``sdtheory simulate``)."""
    before = page.until_text(".sd-cell-command", lambda t: t.startswith("sdtheory simulate"))
    (canvas, *_) = [c for c in page.all("canvas") if c.size["width"] > 300]
    page.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    ActionChains(page.d).move_to_element_with_offset(canvas, -60, 40).click().perform()
    page.until_text(".sd-cell-status", lambda t: t.startswith("clicked cell"))
    cmd = page.until_text(".sd-cell-command",
                          lambda t: t != before and t.startswith("sdtheory simulate"))
    return shlex.split(cmd)[2:]
