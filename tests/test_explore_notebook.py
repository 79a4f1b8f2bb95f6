"""sd.explore() in Jupyter: the display a notebook receives holds the page (its form with its
values, the diagram and the cell view once computed), in process and in a real kernel; the
executed notebook exported to HTML draws the page in headless Chromium with no network; and in
a notebook run in JupyterLab, the page follows its form and clicks, the kernel computing.

The kernel, HTML and JupyterLab tests need the browser extra (ipykernel, nbclient, nbconvert,
jupyterlab) and, for the browser, Debian's chromium (tests/browser.py). Without them they are
skipped, except in CI (CI=true), where they fail.
"""

import base64
import contextlib
import gzip
import html
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import sdtheory
from sdtheory.cli import main
from sdtheory.explore import free_port, jobs
from tests.browser import Page, chromium, click_cell, expected_colours, missing
from tests.test_explore import FORM

EXEC = "application/vnd.holoviews_exec.v0+json"     # Panel's mime type for a live view

# The notebook: Panel's scripts inline (so that the notebook and its HTML export need no
# network), the page displayed, then displayed again once its two views are computed.
CELLS = [
    "import panel as pn\npn.extension(inline=True)",
    "import sdtheory as sd\nsd.enable_x64()\napp = sd.explore()\napp",
    """import asyncio
panes = {c: p for p in app.select(pn.pane.HTML) for c in p.css_classes}
for _ in range(3000):
    if all(panes[f"sd-{v}-command"].object for v in ("phase", "cell")):
        break
    await asyncio.sleep(0.1)
print(sd.__file__)
app""",
]


def _document(bundle_html: str) -> dict:
    """The Bokeh document of a notebook display's text/html (its docs_json)."""
    m = re.search(r"var docs_json = (\{.*?\});\n", bundle_html)
    assert m, "no docs_json in the display"
    (doc,) = json.loads(m.group(1)).values()
    return doc


def _models(bundle_html: str) -> list[dict]:
    """The Bokeh models of a notebook display, each as {"name": ..., "attributes": {...}}."""
    out = []

    def walk(x):
        if isinstance(x, dict):
            if x.get("type") == "object" and "attributes" in x:
                out.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(_document(bundle_html))
    return out


def _by_class(models) -> dict[str, dict]:
    """The attributes of the page's models by their sd-* CSS class."""
    return {c: m["attributes"] for m in models
            for c in m["attributes"].get("css_classes", []) if c.startswith("sd-")}


def _text(attrs) -> str:
    """An HTML pane's text, tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", html.unescape(attrs.get("text", "")))).strip()


def _array(v) -> np.ndarray:
    """A column of a ColumnDataSource as Bokeh serialises it (base64 bytes, gzipped by
    Panel)."""
    if not isinstance(v, dict):
        return np.asarray(v)
    raw = base64.b64decode(v["array"]["data"])
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    assert v["order"] == "little"
    return np.frombuffer(raw, dtype=np.dtype(v["dtype"]).newbyteorder("<")).reshape(v["shape"])


def _check_form(bundle: dict, meta: dict, values: dict):
    """A display of the page: Panel's live-view mime type naming the root drawn by its
    text/html, BokehJS's version, and every field of the form with its label, choices and
    value (``values``: the form's values)."""
    import bokeh

    from sdtheory.explore.app import _CHOICES, _LABELS

    assert EXEC in bundle
    root = meta[EXEC]["id"]
    page = bundle["text/html"]
    assert f'data-root-id="{root}"' in page
    assert _document(page)["version"] == bokeh.__version__
    fields = {c[len("sd-field-"):]: a for c, a in _by_class(_models(page)).items()
              if c.startswith("sd-field-")}
    assert sorted(fields) == sorted(jobs.FIELDS)
    for key, a in fields.items():
        if isinstance(values[key], bool):
            assert (a["label"], a.get("active", False)) == (_LABELS[key], values[key]), key
        else:
            assert (a["title"], a["value"]) == (_LABELS[key], values[key]), key
        if key in _CHOICES:
            assert a["options"] == _CHOICES[key], key


def test_notebook_display_holds_the_form():
    """What a notebook receives for sd.explore(K=3, solver="exact") (Panel's mime bundle,
    made in this process): the page's form with those values."""
    try:
        import IPython  # noqa: F401   Panel's notebook display imports it
        import panel  # noqa: F401
    except ImportError:
        missing("the explore and browser extras (panel, IPython)")
    bundle, meta = sdtheory.explore(K=3, solver="exact")._repr_mimebundle_()
    _check_form(bundle, meta, {**jobs.DEFAULTS, "K": "3", "solver": "exact"})


def _checkout() -> str:
    """The folder holding the imported sdtheory package."""
    return os.path.dirname(os.path.dirname(os.path.abspath(sdtheory.__file__)))


@pytest.fixture(scope="module")
def notebook(side_cache):
    """The notebook CELLS executed in a fresh Python kernel (this interpreter's)."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        missing("the browser extra (nbclient, nbformat, ipykernel)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    root = _checkout()
    env = {**os.environ, "SDTHEORY_JAX_CACHE": str(side_cache),
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": root}})
    client.execute(env=env)
    return nb


@pytest.mark.slow
def test_kernel_displays_the_page_and_computes_its_views(notebook):
    """In a kernel: no error; Panel's scripts (BokehJS and Panel's) are in the notebook, none
    from a CDN; the first display is the form with its defaults, the second (once computed)
    holds the diagram and both views' commands, the phase command that of the form."""
    outs = [o for c in notebook.cells for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"], outs
    assert not [o for o in outs if o.output_type == "stream" and o.name == "stderr"], outs
    scripts = "".join(o.data.get("application/javascript", "") for o in outs
                      if o.output_type == "display_data")
    assert "Bokeh.Panel" in scripts and "cdn.bokeh.org" not in scripts
    assert len(scripts) > 1_000_000                  # BokehJS itself, not a loader
    (first,) = [o for o in notebook.cells[1].outputs if o.output_type == "execute_result"]
    _check_form(first.data, first.metadata, jobs.DEFAULTS)
    (printed,) = [o.text for o in notebook.cells[2].outputs if o.output_type == "stream"]
    assert printed.strip() == sdtheory.__file__              # this checkout's package
    (second,) = [o for o in notebook.cells[2].outputs if o.output_type == "execute_result"]
    models = _models(second.data["text/html"])
    panes = _by_class(models)
    assert _text(panes["sd-phase-command"]) == jobs.command_line("phase",
                                                                  jobs.phase_argv({}))
    assert _text(panes["sd-cell-command"]) == jobs.command_line("simulate",
                                                                 jobs.cell_argv({}, None))
    # the diagram: each cell's value and colour those of the phase command
    from sdtheory.explore.app import _fill_colours

    (cells,) = [m["attributes"] for m in models if m["attributes"].get("name") == "sd-cells-0"]
    (palette,) = [m["attributes"]["palette"] for m in models
                  if m["attributes"].get("name") == "sd-palette"]
    cols = {k: _array(v) for k, v in cells["data"]["entries"]}
    r = jobs.compute_phase({}).result
    np.testing.assert_array_equal(cols["value"], r.data.ravel())
    assert [palette[int(i)] for i in cols["index"]] == _fill_colours(r)


@pytest.mark.slow
# Panel's notebook extension publishes one empty display, which the exporter reports
@pytest.mark.filterwarnings("ignore:Your element with mimetype:UserWarning")
def test_exported_notebook_draws_offline(notebook, tmp_path, capsys):
    """The executed notebook exported to HTML (nbconvert, as Jupyter's "download as HTML")
    and opened from a file with every host unreachable: both displays' forms, the diagram
    drawn in the colours of the phase command's cells, the cell view's table what simulate
    prints."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    path = tmp_path / "explore.html"
    path.write_text(body, encoding="utf-8")
    driver = chromium()
    try:
        driver.get(path.as_uri())
        page = Page(driver)
        page.wait.until(lambda _: page.text(".sd-cell-table", last=True) != "")
        # both displays drew the form: its selects with their choices
        from sdtheory.explore.app import _CHOICES

        options = driver.execute_script(
            "return Array.from(arguments[0], s => Array.from(s.options, o => o.value))",
            page.all("select"))
        assert sorted(options) == sorted(2 * [_CHOICES[k] for k in _CHOICES])
        assert page.text(".sd-phase-command", last=True) == jobs.command_line(
            "phase", jobs.phase_argv({}))
        capsys.readouterr()
        assert main(["simulate", *jobs.cell_argv({}, None)]) == 0
        printed = capsys.readouterr().out.strip()
        assert page.text(".sd-cell-table", last=True) == printed
        # the diagram drawn: its canvas holds every colour of the phase command's cells
        colours = set(expected_colours({}))
        page.wait.until(lambda _: colours <= _canvas_colours(page, 600, 470))
        # what the browser fetched from outside the file: only the export template's own
        # (MathJax, require.js), which failed; the page needed none of it
        urls = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        outside = [u for u in urls if not u.startswith("file:")]
        assert all(re.search(r"/(mathjax|require\.js)/", u) for u in outside), outside
    finally:
        driver.quit()


def _canvas_colours(page, width, height) -> set[str]:
    """The opaque pixel colours (#rrggbb) of the page's ``width`` x ``height`` canvases."""
    return set(page.d.execute_script("""
        const seen = new Set();
        for (const c of arguments[0]) {
          if (c.width !== arguments[1] || c.height !== arguments[2]) continue;
          const ctx = c.getContext('2d');
          if (!ctx) continue;
          const px = ctx.getImageData(0, 0, c.width, c.height).data;
          for (let i = 0; i < px.length; i += 4) if (px[i + 3] === 255)
            seen.add('#' + [px[i], px[i + 1], px[i + 2]].map(
              v => v.toString(16).padStart(2, '0')).join(''));
        }
        return Array.from(seen);""", page.all("canvas"), width, height))


@contextlib.contextmanager
def _jupyterlab(root, cache):
    """A JupyterLab server on 127.0.0.1 serving ``root``, with all its state (configuration,
    data, runtime files, IPython's profile) in ``root``'s subfolders and JAX's compilation
    cache in ``cache``: the URL of the notebook
    ``root/explore.ipynb`` with its token. The page exposes the application
    (window.jupyterapp) so that a test can run its commands; the server fetches nothing (no
    news, no update check, no extension index)."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        missing("the browser extra (jupyterlab)")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "SDTHEORY_JAX_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([_checkout(), os.environ.get("PYTHONPATH", "")])}
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(root / var.lower())
        os.mkdir(env[var])
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--allow-root", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (root / "jupyter.log").read_text()
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, (root / "jupyter.log").read_text()
                time.sleep(0.1)
        yield f"{url}/doc/tree/explore.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_live_notebook_in_jupyterlab(tmp_path, capsys, side_cache):
    """sd.explore() in a notebook opened in JupyterLab and run there: the page in the
    notebook's output follows its form (a new x range redraws the diagram in the phase
    command's colours) and a click on the diagram shows the cell as simulate prints it, the
    kernel computing both."""
    import nbformat

    form = dict(FORM)
    cells = ["import panel as pn\npn.extension(inline=True)",
             f"import sdtheory as sd\nsd.enable_x64()\nsd.explore(**{form!r})"]
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}}), tmp_path / "explore.ipynb")
    with _jupyterlab(tmp_path, side_cache) as url:
        driver = chromium()
        try:
            driver.get(url)
            page = Page(driver)
            # the notebook open and its kernel started: run all its cells
            page.wait.until(lambda _: driver.execute_script(
                "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                "const k = w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel;"
                "return !!k && k.status === 'idle';"))
            driver.execute_script(
                "window.jupyterapp.commands.execute('notebook:run-all-cells')")
            cmd = page.until_text(".sd-phase-command", lambda t: t.startswith("sdtheory phase"))
            assert cmd == jobs.command_line("phase", jobs.phase_argv(form))
            first = expected_colours(form)
            page.wait.until(lambda _: page.colours() == first)
            # a new x range, typed into the output: the kernel redraws the diagram
            page.type("x-hi", "0.9")
            form["x-hi"] = "0.9"
            page.until_text(".sd-phase-command", lambda t: " --x eta:0:0.9:7 " in t)
            assert page.text(".sd-phase-command") == jobs.command_line(
                "phase", jobs.phase_argv(form))
            expected = expected_colours(form)
            page.wait.until(lambda _: page.colours() == expected)
            assert expected != first
            # a click on the diagram: the cell view shows what simulate prints for that cell
            argv = click_cell(page)
            capsys.readouterr()
            assert main(["simulate", *argv]) == 0
            printed = capsys.readouterr().out.strip()
            page.until_text(".sd-cell-table", lambda t: t == printed)
            # what the browser fetched from outside the server: only style sheets of Panel's
            # (its theme and loading spinner, which Panel's updates name by their CDN address
            # in a notebook), which failed; the page drew and worked without them
            urls = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
            outside = [u for u in urls if not u.startswith("http://127.0.0.1:")]
            assert all(re.match(r"https://cdn\.holoviz\.org/panel/[^/]+/dist/.*\.css", u)
                       for u in outside), outside
        finally:
            driver.save_screenshot(str(tmp_path / "jupyterlab.png"))
            driver.quit()
