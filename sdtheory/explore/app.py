"""The explorer's page (Panel and Bokeh): a form, the phase diagram, the cell view.

A thin layer over :mod:`sdtheory.explore.jobs`: every number on the page comes from the code
of ``sdtheory phase`` and ``sdtheory simulate``. Computations run in worker threads, one
kind of job at a time; a newer request supersedes an older one (a stale result is dropped,
and a request still waiting is skipped).
"""

from __future__ import annotations

import asyncio
import functools
import html
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import panel as pn
from bokeh.events import Tap
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper, Range1d
from bokeh.plotting import figure

from sdtheory.explore import jobs
from sdtheory.explore.figures import (
    PARTS,
    SOLVER_NAMES,
    cell_series,
    cell_title,
    overlay_lines,
)
from sdtheory.noise import KINDS
from sdtheory.problem import MODELS

__all__ = ["Explorer", "Latest"]

log = logging.getLogger(__name__)

_STALE = object()

_CHOICES = {
    "model": list(MODELS), "noise": list(KINDS),
    "solver": ["exact", "linear"], "quantity": ["r_star", "acc_round_R", "pll_gain"],
    "x": ["eta", "lam", "c", "d", "e", "n", "K"], "y": ["eta", "lam", "c", "d", "e", "n", "K"],
}
_LABELS = {
    "model": "model", "K": "K (classes)", "n": "n (samples per class)", "c": "c", "d": "d",
    "e": "e (superclass model)", "classes-per-superclass": "classes per superclass m",
    "dim": "dim D (gmm model)", "lam": "lam (ridge)", "noise": "noise", "eta": "eta",
    "sampled": "sampled noise (else exact counts)", "seed": "seed", "solver": "solver",
    "quantity": "quantity", "max-rounds": "max rounds R", "x": "x axis", "x-lo": "from",
    "x-hi": "to", "x-count": "count", "x-log": "log", "y": "y axis", "y-lo": "from",
    "y-hi": "to", "y-count": "count", "y-log": "log",
}
_QUANTITY = {"r_star": "r*", "acc_round_R": "accuracy at round R", "pll_gain": "PLL gain"}

_CSS = """
.sd-error { color: #b00020; font-size: 12px; margin-top: -6px; }
.sd-command pre, .sd-table pre { font-size: 11px; white-space: pre; overflow-x: auto;
  background: #f6f6f6; padding: 4px; margin: 0; }
.sd-status { font-size: 12px; color: #444; }
"""


_BUSY = "<span class='sd-busy'></span>"
"""Marks a status line while its view computes: a CSS animation (Panel's spinner widget
changes its CSS classes, and the browser then lays the page out again, which took longer than
drawing a new diagram: benchmarks/README.md)."""
_BUSY_CSS = """
.sd-busy { display: inline-block; width: 10px; height: 10px; margin-right: 6px;
  border: 2px solid #bbb; border-top-color: #1f77b4; border-radius: 50%;
  animation: sd-spin 0.8s linear infinite; vertical-align: middle; }
@keyframes sd-spin { to { transform: rotate(360deg); } }
"""


class Latest:
    """Runs jobs of one kind in a worker thread, one at a time. A newer request supersedes
    an older one: a result that is no longer the newest is dropped (``run`` returns None), a
    job that is superseded before it starts does not run."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.generation = 0

    async def run(self, fn, progress=None):
        self.generation += 1
        mine = self.generation

        loop = asyncio.get_running_loop()

        def job():
            if mine != self.generation:
                return _STALE
            handler = _ThreadLog(progress, loop) if progress is not None else None
            if handler is not None:
                handler.attach()
            try:
                return fn()
            finally:
                if handler is not None:
                    handler.detach()

        out = await loop.run_in_executor(self.pool, job)
        return None if out is _STALE or mine != self.generation else out


class _ThreadLog(logging.Handler):
    """The library's progress lines (logger ``sdtheory``, INFO) of the current thread, handed
    to ``sink`` on the event loop."""

    def __init__(self, sink, loop):
        super().__init__(logging.INFO)
        self.sink, self.loop = sink, loop
        self.thread = threading.get_ident()
        self.logger = logging.getLogger("sdtheory")

    def attach(self):
        self.level0 = self.logger.level
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)

    def detach(self):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level0)

    def emit(self, record):
        if record.thread == self.thread:
            self.loop.call_soon_threadsafe(self.sink, record.getMessage())


class Explorer:
    """One page: its widgets, its views and their jobs (one Explorer per browser session)."""

    def __init__(self, **values):
        unknown = set(values) - set(jobs.FIELDS)
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}; fields are "
                             f"{', '.join(jobs.FIELDS)}")
        self.values = {**jobs.DEFAULTS, **{k: v if isinstance(v, bool) else str(v)
                                           for k, v in values.items()}}
        self.widgets, self.errors = {}, {}
        for key in jobs.FIELDS:
            v = self.values[key]
            cls = [f"sd-field-{key}"]
            width = 80 if key[1:2] == "-" else 140          # the axes' LO, HI, COUNT
            if key in _CHOICES:
                w = pn.widgets.Select(label=_LABELS[key], options=_CHOICES[key], value=v,
                                      css_classes=cls, width=width)
            elif isinstance(v, bool):
                w = pn.widgets.Checkbox(label=_LABELS[key], value=v, css_classes=cls,
                                        margin=(30, 10, 0, 10) if key[1:2] == "-" else 10)
            else:
                w = pn.widgets.TextInput(label=_LABELS[key], value=v, css_classes=cls,
                                         width=width)
            w.param.watch(self._changed, "value")
            self.widgets[key] = w
            self.errors[key] = pn.pane.HTML("", css_classes=["sd-error", f"sd-error-{key}"],
                                            visible=False, margin=(0, 10))
        self.form_error = pn.pane.HTML("", css_classes=["sd-error", "sd-error-form"],
                                       visible=False)
        self.phase_jobs, self.cell_jobs = Latest(), Latest()
        self.phase_view = self.cell_view = None
        self.cell = None                                   # the clicked cell's parameters
        self.last_changed = None
        self.input_errors = {"phase": None, "cell": None}
        self._draws = 0                                     # diagrams drawn (names their data)
        self._figure = self._figure_kinds = self._edges = None
        self.phase_status = pn.pane.HTML("", css_classes=["sd-status", "sd-phase-status"],
                                         stylesheets=[_BUSY_CSS])
        self.plot = pn.pane.Bokeh(None, css_classes=["sd-phase-plot"])
        self.legend = pn.pane.HTML("", css_classes=["sd-legend"])
        self.phase_command = pn.pane.HTML("", css_classes=["sd-command", "sd-phase-command"])
        self.phase_downloads = _Downloads()
        self.cell_status = pn.pane.HTML("", css_classes=["sd-status", "sd-cell-status"],
                                        stylesheets=[_BUSY_CSS])
        self.cell_command = pn.pane.HTML("", css_classes=["sd-command", "sd-cell-command"])
        self.cell_summary = pn.pane.HTML("", css_classes=["sd-cell-summary"])
        self.cell_plot = pn.pane.Bokeh(None, css_classes=["sd-cell-plot"])
        self.cell_plots = _CellPlots()
        self.cell_table = pn.pane.HTML("", css_classes=["sd-table", "sd-cell-table"],
                                       max_height=420, styles={"overflow-y": "auto"})
        self.cell_downloads = _Downloads()

    # ---------------------------------------------------------------------------------- layout

    def _field(self, key):
        return pn.Column(self.widgets[key], self.errors[key], margin=0)

    def layout(self):
        row = pn.Row
        axis = [row(*(self._field(f"{a}{s}") for s in ("", "-lo", "-hi", "-count")),
                    self._field(f"{a}-log")) for a in ("x", "y")]
        form = pn.Column(
            pn.pane.Markdown("### Model"),
            row(self._field("model"), self._field("K"), self._field("n")),
            row(self._field("c"), self._field("d"), self._field("lam")),
            row(self._field("e"), self._field("classes-per-superclass"), self._field("dim")),
            pn.pane.Markdown("### Label noise"),
            row(self._field("noise"), self._field("eta"), self._field("seed")),
            self._field("sampled"),
            pn.pane.Markdown("### Diagram"),
            row(self._field("solver"), self._field("quantity"), self._field("max-rounds")),
            *axis, self.form_error, width=520)
        phase = pn.Column(
            pn.pane.Markdown("## Phase diagram (click a cell)"),
            self.phase_status, self.plot, self.legend,
            self.phase_command, self.phase_downloads.row, width=640)
        cell = pn.Column(
            pn.pane.Markdown("## Cell"), self.cell_status,
            self.cell_command, self.cell_summary, self.cell_plot, self.cell_table,
            self.cell_downloads.row, width=760)
        page = pn.Column(
            pn.pane.Markdown("# sdtheory explore: self-distillation under label noise"),
            row(form, phase), cell, stylesheets=[_CSS])
        pn.state.onload(self.start)
        return page

    # ------------------------------------------------------------------------------- requests

    @staticmethod
    def _spawn(update):
        """Run the coroutine function ``update`` on the running event loop (the page's server
        or the notebook's kernel); without one (a plain script) nothing is scheduled, rather
        than a coroutine that is never awaited."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.create_task(update())

    def start(self):
        self._spawn(self.update_phase)
        self._spawn(self.update_cell)

    def _changed(self, event):
        key = next(k for k, w in self.widgets.items() if w is event.obj)
        self.values[key] = event.new
        self.last_changed = key
        if key in ("x", "y"):
            self.cell = None
        self._spawn(self.update_phase)
        shown = self.cell_view is not None and self.input_errors["cell"] is None
        if not (shown and jobs.cell_argv(self.values, self.cell) == self.cell_view.argv):
            self._spawn(self.update_cell)    # the cell's command changed

    def _show_error(self, which, err):
        """The commands' one-line messages (``which`` view's now ``err``, None: none) next to
        the field each names (the field changed last, where a message names several)."""
        self.input_errors[which] = err
        shown = {}
        for e in self.input_errors.values():
            if e is not None:
                at = self.last_changed if self.last_changed in e.fields else e.field
                shown.setdefault(at if at in self.errors else None, []).append(e.message)
        for key, pane in [*self.errors.items(), (None, self.form_error)]:
            msgs = list(dict.fromkeys(shown.get(key, [])))
            pane.object = "<br>".join(html.escape(m) for m in msgs)
            pane.visible = bool(msgs)

    async def _run(self, which, fn):
        """A job of one view; None when superseded or failed (the message shown instead)."""
        runner = self.phase_jobs if which == "phase" else self.cell_jobs
        status = self.phase_status if which == "phase" else self.cell_status
        status.object = _BUSY + "computing…"
        try:
            out = await runner.run(fn, progress=lambda m: setattr(status, "object",
                                                                   _BUSY + html.escape(m)))
        except jobs.InputError as err:
            self._show_error(which, err)
            status.object = "not computed: bad input (see the message at the field)"
            return None
        except jobs.Failed as err:
            status.object = html.escape(str(err))
            return None
        except Exception as err:        # noqa: BLE001  the page reports, it never stops
            log.warning("sdtheory explore: %s failed: %s: %s", which, type(err).__name__, err)
            status.object = html.escape(f"sdtheory {'phase' if which == 'phase' else 'simulate'}"
                                        f": failed: {type(err).__name__}: {err}")
            return None
        return out

    async def update_phase(self):
        values = dict(self.values)
        view = await self._run("phase", lambda: _phase_job(values))
        if view is None:
            return
        self._show_error("phase", None)
        view, lines, cols = view
        self.phase_view = view
        self._diagram(view, lines, cols)
        self.legend.object = _legend(view.result)
        r = view.result
        self.phase_status.object = (f"{r.x.count} x {r.y.count} cells, {r.solver} solver, "
                                    f"{r.seconds:.2f} s")
        self.phase_command.object = f"<pre>{html.escape(view.command)}</pre>"
        self.phase_downloads.show(jobs.phase_file_names(view), lambda: jobs.phase_files(view))

    async def update_cell(self):
        values, cell = dict(self.values), self.cell
        view = await self._run("cell", lambda: jobs.compute_cell(values, cell))
        if view is None:
            return
        self._show_error("cell", None)
        self.cell_view = view
        self.cell_status.object = ("the form's own parameters (click a cell of the diagram)"
                                   if cell is None else "clicked cell: " + ", ".join(
                                       f"{k} = {v:g}" for k, v in cell.items()))
        self.cell_command.object = f"<pre>{html.escape(view.command)}</pre>"
        self.cell_summary.object = _summary(view)
        if self.cell_plots.show(view):
            self.cell_plot.object = self.cell_plots.model
        self.cell_table.object = f"<pre>{html.escape(view.table)}</pre>"
        self.cell_downloads.show(jobs.CELL_FILES, lambda: jobs.cell_files(view))

    def click(self, ix: int, iy: int):
        """Show cell (ix, iy) of the current diagram in the cell view."""
        if self.phase_view is None:
            return
        self.cell = jobs.cell_at(self.phase_view, ix, iy)
        self._mark(ix, iy)
        self._spawn(self.update_cell)

    # -------------------------------------------------------------------------------- drawing

    def _diagram(self, view, lines, cols):
        """Draw a diagram: the cells' data into the figure, a new figure only where an
        axis changes between linear and log."""
        r = view.result
        kinds = ("log" if r.x.log else "linear", "log" if r.y.log else "linear")
        if self._figure is None or self._figure_kinds != kinds:
            self._figure, self._figure_kinds = self._new_figure(*kinds), kinds
            self._fill(view, lines, cols)
            self.plot.object = self._figure
            return
        _locked(self._figure, lambda: self._fill(view, lines, cols))

    def _fill(self, view, lines, cols):
        from sdtheory.plots.phase import LABELS

        r = view.result
        fig, src = self._figure, self._sources
        xe, ye = self._edges = cols.pop("edges")
        palette = cols.pop("palette")
        self._mapper.palette = palette
        self._mapper.high = len(palette) - 0.5
        name = {k: v.replace("$", "").replace("\\", "") for k, v in LABELS.items()}
        fig.xaxis.axis_label, fig.yaxis.axis_label = name[r.x.name], name[r.y.name]
        fig.title.text = (f"{_QUANTITY[r.quantity]}, {r.solver} solver, rounds "
                          f"0..{r.max_rounds}")
        self._hover.tooltips = [(r.x.name, "@xv{0.[000000]}"), (r.y.name, "@yv{0.[000000]}"),
                                (_QUANTITY[r.quantity], "@value{0.[0000]}"),
                                ("closed-form r*", "@cf"), ("Delta", "@delta{0.0000}")]
        fig.x_range.start, fig.x_range.end = xe[0], xe[-1]
        fig.y_range.start, fig.y_range.end = ye[0], ye[-1]
        src["cells"].data = cols
        src["cells"].name = f"sd-cells-{self._draws}"
        self._draws += 1
        src["r_star"].data = dict(xs=[x for x, _ in lines["r_star"]],
                                  ys=[y for _, y in lines["r_star"]])
        lab = lines["labels"]
        src["labels"].data = dict(x=[t[0] for t in lab], y=[t[1] for t in lab],
                                  text=[t[2] for t in lab])
        src["delta0"].data = dict(xs=[x for x, _ in lines["delta0"]],
                                  ys=[y for _, y in lines["delta0"]])
        src["marker"].data = dict(left=[], right=[], bottom=[], top=[])

    def _new_figure(self, x_type, y_type):
        fig = figure(width=600, height=470, tools="tap,pan,wheel_zoom,reset,save",
                     x_axis_type=x_type, y_axis_type=y_type, x_range=Range1d(0, 1),
                     y_range=Range1d(0, 1))
        cells = ColumnDataSource(dict(left=[], right=[], bottom=[], top=[], index=[], xv=[],
                                      yv=[], value=[], cf=[], delta=[]))
        self._mapper = LinearColorMapper(palette=["#ffffff"], low=-0.5, high=0.5,
                                         name="sd-palette")
        quads = fig.quad(left="left", right="right", bottom="bottom", top="top",
                         fill_color={"field": "index", "transform": self._mapper},
                         line_color=None, source=cells, nonselection_fill_alpha=1.0,
                         selection_fill_alpha=1.0)    # a click marks its cell, no fading
        self._hover = HoverTool(renderers=[quads])
        fig.add_tools(self._hover)
        self._sources = {"cells": cells, "r_star": ColumnDataSource(dict(xs=[], ys=[])),
                         "labels": ColumnDataSource(dict(x=[], y=[], text=[])),
                         "delta0": ColumnDataSource(dict(xs=[], ys=[])),
                         "marker": ColumnDataSource(dict(left=[], right=[], bottom=[],
                                                         top=[]))}
        fig.multi_line(xs="xs", ys="ys", color="black", line_width=1.2,
                       source=self._sources["r_star"])
        fig.text(x="x", y="y", text="text", text_font_size="9pt", text_align="center",
                 text_baseline="middle", background_fill_color="white",
                 background_fill_alpha=0.7, source=self._sources["labels"])
        fig.multi_line(xs="xs", ys="ys", color="#d00000", line_width=2, line_dash="dashed",
                       source=self._sources["delta0"])
        fig.quad(left="left", right="right", bottom="bottom", top="top", fill_alpha=0,
                 line_color="magenta", line_width=3, source=self._sources["marker"])

        def tapped(event):
            if event.x is None or event.y is None or self._edges is None:
                return
            xe, ye = self._edges
            i = int(np.searchsorted(xe, event.x)) - 1
            j = int(np.searchsorted(ye, event.y)) - 1
            if 0 <= i < xe.size - 1 and 0 <= j < ye.size - 1:
                self.click(i, j)

        fig.on_event(Tap, tapped)
        return fig

    def _mark(self, ix, iy):            # called by the figure's tap: under its lock
        xe, ye = self._edges
        self._sources["marker"].data = dict(left=[xe[ix]], right=[xe[ix + 1]],
                                            bottom=[ye[iy]], top=[ye[iy + 1]])


_DASH = {"-": "solid", "--": "dashed", ":": "dotted"}


class _CellPlots:
    """The cell figure of :func:`sdtheory.explore.figures.cell_figure` (its PNG download),
    drawn by the browser from the same :func:`~sdtheory.explore.figures.cell_series`. The
    figure stays while the lines do (the same solvers, PLL students and groups): a new cell
    then only sends the lines' data, not a new figure for the browser to build."""

    def __init__(self):
        self.model, self.key, self.sources, self.acc = None, None, {}, None

    def show(self, view) -> bool:
        """Draw ``view``'s cell; True where that made a new figure (``self.model``)."""
        ser = cell_series(view.doc)
        key = (tuple(ser["curves"]), tuple(ser["pll"]), tuple(ser["groups"]))
        new = key != self.key
        if new:
            self.key, self.model = key, self._new(ser)
        # the figure's own sources and axes, should a later cell build a new figure first
        src, acc = self.sources, self.acc
        _locked(self.model, lambda: self._fill(view, ser, src, acc))
        return new

    @staticmethod
    def _fill(view, ser, src, acc):
        R = ser["R"]
        acc.title.text = cell_title(view.doc)
        acc.x_range.start, acc.x_range.end = -0.5, R + 1.5
        for k, (r, y) in ser["curves"].items():
            src["curve", k].data = dict(x=r, y=y)
        for k, a in ser["pll"].items():
            src["pll", k].data = dict(x=[R + 1], y=[a])
        for k, (u, v) in ser["groups"].items():
            src["group", k].data = dict(x=u, y=v)
            src["start", k].data = dict(x=u[:1], y=v[:1])
            src["end", k].data = dict(x=u[-1:], y=v[-1:])

    def _new(self, ser):
        from bokeh.layouts import row

        from sdtheory.plots.figures import SIMPLEX_HEIGHT
        from sdtheory.plots.style import CLASS_COLORS

        def source(*key):
            src[key] = ColumnDataSource(dict(x=[], y=[]))
            return src[key]

        src = self.sources = {}
        colours = {"exact": "#1f77b4", "linear": "#ff7f0e"}
        dash = {part: _DASH[ls] for _, part, ls in PARTS}
        acc = self.acc = figure(
            width=470, height=330, title="", x_range=Range1d(-0.5, 1.5),
            y_range=(-0.03, 1.03), tools="pan,wheel_zoom,reset,save,hover",
            x_axis_label="round r (PLL student after the last round)",
            y_axis_label="training accuracy (true labels)")
        acc.title.text_font_size = "8pt"
        for name, part in ser["curves"]:
            acc.line("x", "y", source=source("curve", (name, part)), color=colours[name],
                     line_dash=dash[part], line_width=1.5,
                     legend_label=f"{SOLVER_NAMES[name]}, {part}")
        for name in ser["pll"]:
            acc.scatter("x", "y", source=source("pll", name), marker="star", size=13,
                        color=colours[name],
                        legend_label=f"{SOLVER_NAMES[name]}, PLL student (all)")
        acc.legend.location = "bottom_right"
        acc.legend.label_text_font_size = "7pt"
        acc.legend.spacing = 0
        if not ser["groups"]:
            return acc
        sx = figure(width=300, height=300, tools="pan,wheel_zoom,reset,save",
                    x_range=(-0.12, 1.12), y_range=(-0.14, SIMPLEX_HEIGHT + 0.12),
                    title="group means across rounds (colour: true class)")
        sx.title.text_font_size = "8pt"
        sx.axis.visible = sx.grid.visible = False
        sx.line([0, 1, 0.5, 0], [0, 0, SIMPLEX_HEIGHT, 0], color="#444444")
        for k, (x, y) in enumerate([(0.0, -0.07), (1.0, -0.07), (0.5, SIMPLEX_HEIGHT + 0.03)]):
            sx.text([x], [y], text=[f"class {k}"], text_color=CLASS_COLORS[k],
                    text_align="center", text_font_size="9pt")
        for t, g in ser["groups"]:
            c = CLASS_COLORS[t]
            sx.line("x", "y", source=source("group", (t, g)), color=c, line_alpha=0.7)
            sx.scatter("x", "y", source=source("start", (t, g)),
                       marker="circle" if t == g else "square", size=8, color=c,
                       fill_color=c if t == g else "white")
            sx.scatter("x", "y", source=source("end", (t, g)), marker="triangle", size=8,
                       color=c)
        return row(acc, sx)


def _locked(model, fn):
    """Call ``fn``, which changes ``model``'s data: in a served page under its document's lock
    (at the server's next tick), elsewhere (a notebook, a model not shown yet) at once."""
    doc = model.document
    if doc is not None and doc.session_context is not None:
        doc.add_next_tick_callback(fn)
    else:
        fn()


def _phase_job(values):
    """The diagram, its overlay lines and its drawing data (all off the event loop)."""
    view = jobs.compute_phase(values)
    return view, overlay_lines(view), _columns(view)


def _columns(view) -> dict:
    """The cells' data for the figure: edges, values, and each cell's colour as an index
    into a palette of the PNG's colours (:func:`sdtheory.plots.phase.cell_colors`)."""
    from sdtheory.plots.phase import cell_edges

    r = view.result
    xe, ye = cell_edges(r.x), cell_edges(r.y)
    ny, nx = r.data.shape
    iy, ix = np.divmod(np.arange(nx * ny), nx)
    palette, index = _cell_palette(r)
    return dict(left=xe[ix], right=xe[ix + 1], bottom=ye[iy], top=ye[iy + 1],
                index=index.astype(np.float64), xv=r.x_values[ix], yv=r.y_values[iy],
                value=r.data.ravel(), cf=r.values["r_star_closed_form"].ravel(),
                delta=view.delta.ravel(), palette=list(palette), edges=(xe, ye))


def _fmt(v) -> str:
    return "-" if not np.isfinite(v) else (f"{v:.0f}" if float(v).is_integer() else f"{v:.4f}")


def _hex(rgba) -> list[str]:
    return [f"#{c:06x}" for c in _rgb_codes(rgba)]


def _rgb_codes(rgba) -> np.ndarray:
    """Colours (..., 3 or 4 floats in [0, 1]) as integers 0xRRGGBB, flattened."""
    c = np.clip(np.round(np.asarray(rgba)[..., :3] * 255), 0, 255).astype(np.int64)
    return (c[..., 0] * 65536 + c[..., 1] * 256 + c[..., 2]).ravel()


def _cell_palette(result) -> tuple[list[str], np.ndarray]:
    """The PNG's colours of every cell (:func:`sdtheory.plots.phase.cell_colors`; failed
    cells grey) as a palette of the distinct ones and each cell's index into it."""
    from sdtheory.plots.phase import cell_colors

    Z, cmap, norm, _, _ = cell_colors(result)
    codes = _rgb_codes(cmap(norm(Z)))
    codes[result.failed.ravel()] = 0x999999
    distinct, index = np.unique(codes, return_inverse=True)
    return [f"#{c:06x}" for c in distinct], index


def _fill_colours(result) -> list[str]:
    """The PNG's colours of every cell, failed cells grey (:func:`_cell_palette`)."""
    palette, index = _cell_palette(result)
    return [palette[i] for i in index]


def _legend(result) -> str:
    from sdtheory.plots.phase import cell_colors

    Z, cmap, norm, ticks, labels = cell_colors(result)
    if ticks is None:
        lo, hi = norm.vmin, norm.vmax
        ticks = list(np.linspace(lo, hi, 5))
        labels = [f"{t:.3g}" for t in ticks]
    cols = _hex(cmap(norm(np.asarray(ticks))))
    items = "".join(f"<span style='display:inline-block;margin-right:8px'><span style="
                    f"'display:inline-block;width:14px;height:14px;background:{c};border:1px "
                    f"solid #888;vertical-align:middle'></span> {html.escape(t)}</span>"
                    for c, t in zip(cols, (str(x).replace(chr(10), ' ') for x in labels)))
    return (f"<div style='font-size:12px'>{_QUANTITY[result.quantity]}: {items}<br>black "
            "lines: closed-form r* (label k: r* &ge; k beyond the line); red dashed: Delta = 0; "
            "grey: cell failed its certificate</div>")


def _summary(view) -> str:
    doc = view.doc
    rows = [("Delta", f"{doc['delta']:.4f}"),
            ("realised noise rate", f"{doc['realised_noise_rate']:.4f}"),
            ("closed-form r*", "-" if doc["r_star_theory"] is None else str(doc["r_star_theory"]))]
    for name, s in doc["solvers"].items():
        rows.append((f"{name} r*", "not reached" if s["r_star"] is None else str(s["r_star"])))
        if s["pll"] is not None:
            p = s["pll"]
            rows.append((f"{name} PLL student (all / clean / noisy)", " / ".join(
                "-" if p[k] is None else f"{p[k]:.4f}"
                for k in ("train_acc", "clean_acc", "noisy_acc"))))
    rows += [(f"a ({k})", f"{v:.6g}") for k, v in view.a.items()]
    body = "".join(f"<tr><td>{html.escape(k)}</td><td class='sd-v' data-key='{html.escape(k)}'>"
                   f"{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table style='font-size:12px'>{body}</table>"


class _Downloads:
    """Download buttons of a view's files (:attr:`row`). The buttons stay while the file names
    do, and a new view only changes what they download: new buttons make the browser lay out
    the page again, which took longer than drawing a new diagram (benchmarks/README.md)."""

    def __init__(self):
        self.row = pn.Row()
        self.names, self.files, self.cache = None, None, {}

    def show(self, names, files):
        """Offer ``names``, made by ``files()`` ({name: bytes}) at the first click."""
        self.files, self.cache = files, {}
        if list(names) != self.names:
            self.names = list(names)
            self.row.objects = [pn.widgets.FileDownload(
                callback=functools.partial(self._get, n), filename=n, label=n,
                embed=False, width=230) for n in names]

    def _get(self, name):
        if not self.cache:
            self.cache = self.files()
        return io.BytesIO(self.cache[name])
