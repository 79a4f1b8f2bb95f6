"""Phase diagrams as PNG: one panel per results CSV (:func:`sdtheory.results.write_phase_csv`)."""

from __future__ import annotations

import numpy as np

from sdtheory._io import atomic_write
from sdtheory.jobs.sweep.grid import Axis
from sdtheory.jobs.sweep.result import PhaseResult

__all__ = ["plot_phase", "cell_edges", "cell_colors", "diagram_axes", "LABELS", "r_star_bins",
           "r_star_colors", "diverging_white", "contourable", "label_contours",
           "single_value_ticks", "hatch_cells"]

LABELS = {"eta": r"noise rate $\eta$", "lam": r"ridge $\lambda$",
          "c": "same-class correlation $c$", "d": "cross-class correlation $d$",
          "e": "cross-superclass correlation $e$", "n": "samples per class $n$",
          "K": "number of classes $K$"}


def cell_edges(axis: Axis) -> np.ndarray:
    """Cell edges of an axis for pcolormesh: midpoints between the values (in log10 for a log
    axis), the outer edges mirrored.

    A single value v gets one cell: [v/2, 3v/2] on a linear axis ([v - 1/2, v + 1/2] if v = 0),
    one decade [v/sqrt(10), v sqrt(10)] centred on v (in log10) on a log axis.
    """
    v = axis.values.astype(np.float64)
    t = np.log10(v) if axis.log else v
    if t.size == 1:
        half = 0.5 if axis.log else (0.5 * abs(t[0]) if t[0] != 0 else 0.5)
        e = np.array([t[0] - half, t[0] + half])
    else:
        mid = 0.5 * (t[1:] + t[:-1])
        e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return 10.0 ** e if axis.log else e


def r_star_bins(R: int) -> list[tuple[int, int]]:
    """Colour bins of r* over rounds 0..R, doubling in width: 0, 1, 2, 3-4, 5-8, 9-16, ...
    (the last one cut at R)."""
    bins, lo = [], 0
    while lo <= R:
        hi = lo if lo <= 2 else min(2 * lo - 2, R)
        bins.append((lo, min(hi, R)))
        lo = min(hi, R) + 1
    return bins


def r_star_colors(R: int):
    """(cmap, norm, tick positions, tick labels) of r* over rounds 0..R: one viridis colour per
    bin of :func:`r_star_bins`, and a last, white bin at R + 1 for "not reached by round R"
    (draw r* = NaN as R + 1)."""
    import matplotlib
    from matplotlib import colors

    bins = r_star_bins(R)
    cols = matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, len(bins)))
    cmap = colors.ListedColormap(list(cols) + [(1.0, 1.0, 1.0, 1.0)])
    bounds = [b[0] - 0.5 for b in bins] + [R + 0.5, R + 1.5]
    norm = colors.BoundaryNorm(bounds, cmap.N)
    ticks = [0.5 * (a + b) for a, b in zip(bounds[:-1], bounds[1:])]
    labels = [f"{a}" if a == b else f"{a}–{b}" for a, b in bins] + ["not\nreached"]
    return cmap, norm, ticks, labels


def diverging_white(lim: float):
    """(cmap, norm) of a signed quantity on [-lim, lim]: red below 0, blue above, and 0 pure
    white (odd colour count, so that 0 maps to the white middle colour exactly)."""
    import matplotlib
    from matplotlib import colors

    base = matplotlib.colormaps["RdBu"]
    lo = base(np.linspace(0.0, 0.4, 128))
    hi = base(np.linspace(0.6, 1.0, 128))
    cmap = colors.LinearSegmentedColormap.from_list(
        "RdWhBu", list(lo) + [(1.0, 1.0, 1.0, 1.0)] + list(hi), N=257)
    lim = max(float(lim), 1e-6)
    return cmap, colors.TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)


def contourable(Z) -> bool:
    """Whether contour lines can be drawn over Z: at least 2 x 2 cells, some finite."""
    Z = np.asarray(Z)
    return Z.ndim == 2 and Z.shape[0] >= 2 and Z.shape[1] >= 2 and bool(np.isfinite(Z).any())


def label_contours(ax, cs, fmt, fontsize: float = 7.5) -> None:
    """Label each level of a contour set once, at a point well inside the axes: levels are
    staggered along x and kept apart from the labels already placed (no clipped or stacked
    labels). Call after the axes' scales and limits are set."""
    to_axes = ax.transData + ax.transAxes.inverted()
    placed: list[np.ndarray] = []
    levels, at = [], []
    n = len(cs.levels)
    for i, (level, segs) in enumerate(zip(cs.levels, cs.allsegs)):
        segs = [sg for sg in segs if len(sg)]
        if not segs:
            continue
        pts = np.concatenate(segs)
        fr = to_axes.transform(pts)
        inside = ((fr[:, 0] > 0.06) & (fr[:, 0] < 0.9) & (fr[:, 1] > 0.07)
                  & (fr[:, 1] < 0.93))
        if not inside.any():
            continue
        pts, fr = pts[inside], fr[inside]
        target = 0.15 + 0.6 * (i / max(n - 1, 1))
        score = np.abs(fr[:, 0] - target)
        for q in placed:
            score = score + 10.0 * (np.hypot(*(fr - q).T) < 0.08)
        j = int(np.argmin(score))
        levels.append(level)
        at.append(tuple(pts[j]))
        placed.append(fr[j])
    # One call for all levels: matplotlib < 3.11 fails on a second clabel of the same set.
    if levels:
        ax.clabel(cs, levels=levels, manual=at, inline=True, inline_spacing=4, fmt=fmt,
                  fontsize=fontsize)


def _describe(cfg: dict) -> str:
    """The fixed parameters, for the title."""
    model = cfg.get("model", "block")
    parts = ["three-level superclass model" + (f" (m = {cfg['classes_per_superclass']})"
                                               if "classes_per_superclass" in cfg else "")
             if model == "superclass" else "two-level block model"]
    for k in ("K", "n", "c", "d", "e", "lam"):
        if k in cfg:
            parts.append(f"{k}={cfg[k]:g}" if k != "lam" else f"λ={cfg[k]:g}")
    if cfg.get("counts") is not None:
        parts.append("counts from file")
    else:
        kind = cfg.get("noise", "sym")
        mode = f"sampled, seed {cfg.get('seed', 0)}" if cfg.get("sampled") else "exact counts"
        parts.append(f"{kind} noise" + (f" η={cfg['eta']:g}" if "eta" in cfg else "")
                     + f" ({mode})")
    return ", ".join(parts)


_QLABEL = {
    "r_star": "r* (first round with 100% training accuracy)",
    "acc_round_R": "training accuracy at round R",
    "pll_gain": "PLL gain: acc(PLL) − max over rounds 0..R of acc(SD)",
}


def plot_phase(result, path, overlay_closed_form_levels: bool = False,
               invert_y: bool = False, overlay_fragile: bool = False):
    """Draw a phase diagram into a PNG (atomically) and return the matplotlib Figure.

    Args:
      result: :class:`PhaseResult` or the path of a CSV written by
        :func:`~sdtheory.results.write_phase_csv` (figures are drawn from results files).
      path: output PNG.
      overlay_closed_form_levels: draw contour lines of the closed-form r*
        (``r_star_closed_form`` column, docs/theory.md section 7.2) on top of the colours, at
        the edges of the colour bins (:func:`r_star_bins`); skipped for a grid with a single
        row or column (a contour needs 2 x 2 cells).
      invert_y: y values increasing downwards (set before the contour labels are placed).
      overlay_fragile: hatch the cells whose value would change were the tie tolerance ten
        times larger or smaller (the ``fragile`` column, :mod:`sdtheory.metrics`); a result
        without that column is refused.

    r* is coloured by bins (0, 1, 2, 3-4, 5-8, ...); undefined cells (NaN: r* not reached
    within R rounds) are white, with their own "not reached" entry on the colour bar; cells
    whose exact solve failed its certificate are grey. A signed PLL gain is white exactly at
    0. Grids of one row, one column or one cell are drawn as such (:func:`cell_edges`).
    """
    from matplotlib import colors
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(result, PhaseResult):
        from sdtheory.results import read_phase_csv as read_csv

        result = read_csv(result)
    failed = result.failed
    fig = Figure(figsize=(7.0, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xe, ye = cell_edges(result.x), cell_edges(result.y)
    Z, cmap, norm, ticks, tick_labels = cell_colors(result)
    mesh = ax.pcolormesh(xe, ye, Z, cmap=cmap, norm=norm, shading="flat")
    _colorbar(fig, ax, mesh, result, (ticks, tick_labels))
    if failed.any():
        grey = np.ma.masked_where(~failed, np.ones(failed.shape))
        ax.pcolormesh(xe, ye, grey, cmap=colors.ListedColormap(["0.6"]), shading="flat")
    nfragile = None                 # hatched cells, None: not drawn
    if overlay_fragile:
        if "fragile" not in result.values:
            raise ValueError("this result has no fragile column to overlay (written before "
                             "decision margins were recorded: compute it again)")
        nfragile = hatch_cells(ax, xe, ye, result.fragile & ~failed)
    diagram_axes(ax, result)
    single_value_ticks(ax, result)
    if invert_y:
        ax.invert_yaxis()
    lines = False
    if overlay_closed_form_levels:
        cf = result.values.get("r_star_closed_form")
        if cf is None:
            raise ValueError("this result has no r_star_closed_form column to overlay")
        lines = overlay_r_star_levels(ax, result, cf)
    ax.set_xlabel(LABELS[result.x.name])
    ax.set_ylabel(LABELS[result.y.name])
    fig.suptitle(_phase_title(result, lines, nfragile), fontsize=9)
    fig.tight_layout()

    def write(tmp):
        fig.savefig(tmp, format="png")

    atomic_write(path, write)
    return fig


def _colorbar(fig, ax, mesh, result, bins) -> None:
    """The colour bar of the cells, labelled with the quantity; r*: one tick per bin, labelled
    ``bins`` = (tick positions, tick labels)."""
    q, R = result.quantity, result.max_rounds
    if q == "r_star":
        ticks, tick_labels = bins
        cbar = fig.colorbar(mesh, ax=ax, ticks=ticks, spacing="uniform", drawedges=True)
        cbar.ax.set_yticklabels(tick_labels)
        cbar.ax.tick_params(length=0)
    else:
        cbar = fig.colorbar(mesh, ax=ax)
    label = _QLABEL[q].replace("round R", f"round R = {R}").replace("0..R", f"0..{R}")
    cbar.set_label(label)


def _phase_title(result, lines: bool, nfragile: int | None) -> str:
    """Quantity, solver and rounds; the problem's parameters; what white, the lines, the
    hatching (``nfragile`` cells, None: not drawn) and grey mean."""
    q, R = result.quantity, result.max_rounds
    failed = result.failed
    solver = "exact fixed point (E)" if result.solver == "exact" else "linearised (L)"
    title = f"{_QLABEL[q].split(' (')[0].split(':')[0]}, {solver} solver, rounds 0..{R}"
    notes = []
    if q == "r_star":
        notes.append(f"white: 100% not reached by round {R}")
    elif q == "pll_gain":
        notes.append("white: gain exactly 0")
    if lines:
        notes.append("lines: closed-form r* at the bin edges (label k: r* ≥ k beyond the line)")
    if nfragile is not None:
        notes.append(f"hatched: {nfragile} fragile cells (value changes with the tie "
                     "tolerance x10 or /10)")
    if failed.any():
        notes.append(f"grey: {int(failed.sum())} cells failed the certificate")
    return (title + "\n" + _describe(result.config)
            + ("\n" + "; ".join(notes) if notes else ""))


def hatch_cells(ax, xe, ye, mask) -> int:
    """Hatch the cells (j, i) of the grid with edges xe, ye where ``mask``; returns their
    number."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    cells = [Rectangle((xe[i], ye[j]), xe[i + 1] - xe[i], ye[j + 1] - ye[j])
             for j, i in zip(*np.nonzero(mask))]
    if cells:
        ax.add_collection(PatchCollection(cells, facecolor="none", edgecolor="black",
                                          hatch="////", linewidth=0.0, zorder=3))
    return len(cells)


def cell_colors(result):
    """(Z, cmap, norm, ticks, tick labels) of a diagram's cells: the masked values to colour
    and their colour map (tick positions and labels for r*'s bins, else None). Cells whose
    exact solve failed are masked (drawn grey by the caller), as are undefined values
    (white)."""
    import matplotlib
    from matplotlib import colors

    q, R = result.quantity, result.max_rounds
    ticks = tick_labels = None
    if q == "r_star":
        cmap, norm, ticks, tick_labels = r_star_colors(R)
        # not reached: the white bin at R + 1 (failed cells stay masked, drawn grey)
        Z = np.ma.masked_invalid(np.where(np.isnan(result.data) & ~result.failed, R + 1.0,
                                          result.data))
    elif q == "acc_round_R":
        cmap = matplotlib.colormaps["viridis"].copy()
        norm = colors.Normalize(0.0, 1.0)
        Z = np.ma.masked_invalid(result.data)
    else:
        lim = float(np.nanmax(np.abs(result.data))) if np.isfinite(result.data).any() else 1.0
        cmap, norm = diverging_white(lim)
        Z = np.ma.masked_invalid(result.data)
    return Z, cmap.with_extremes(bad="white"), norm, ticks, tick_labels


def diagram_axes(ax, result) -> None:
    """The axes' scales (log where the sweep is) and limits (the outer cell edges)."""
    xe, ye = cell_edges(result.x), cell_edges(result.y)
    if result.x.log:
        ax.set_xscale("log")
    if result.y.log:
        ax.set_yscale("log")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])


def single_value_ticks(ax, result) -> None:
    """On an axis holding a single value, one tick at that value (not the cell's edges)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    for axis, which in ((result.x, ax.xaxis), (result.y, ax.yaxis)):
        if axis.count == 1:
            v = float(axis.values[0])
            which.set_major_locator(FixedLocator([v]))
            which.set_major_formatter(FixedFormatter([f"{v:g}"]))
            which.set_minor_locator(NullLocator())


def overlay_r_star_levels(ax, result, cf) -> bool:
    """Contour lines of the closed-form r* ``cf`` at the edges of the r* colour bins (the
    line labelled k separates r* < k from r* >= k), labelled once each. Returns False (and
    draws nothing) where there is nothing to draw: a single row or column, or a constant r*.
    Call after the axes' scales and limits are set."""
    R = result.max_rounds
    if not contourable(cf):
        return False
    finite = cf[np.isfinite(cf)]
    lo_bins = [a for a, _ in r_star_bins(R)][1:] + [R + 1]
    levels = [k - 0.5 for k in lo_bins if finite.min() < k - 0.5 < finite.max()]
    if not levels:
        return False
    Xc, Yc = np.meshgrid(result.x_values, result.y_values)
    cs = ax.contour(Xc, Yc, np.ma.masked_invalid(cf), levels=levels, colors="k",
                    linewidths=0.9)
    label_contours(ax, cs, fmt=lambda v: f"{v + 0.5:g}")
    return True
