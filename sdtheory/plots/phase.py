"""Phase diagrams as PNG: one panel per results CSV (:mod:`sdtheory.sweep.io`)."""

from __future__ import annotations

import math

import numpy as np

from sdtheory._io import atomic_write
from sdtheory.sweep.grid import Axis
from sdtheory.sweep.result import PhaseResult

__all__ = ["plot_phase", "cell_edges", "LABELS"]

LABELS = {"eta": r"noise rate $\eta$", "lam": r"ridge $\lambda$",
          "c": "same-class correlation $c$", "d": "cross-class correlation $d$",
          "e": "cross-superclass correlation $e$", "n": "samples per class $n$",
          "K": "number of classes $K$"}


def cell_edges(axis: Axis) -> np.ndarray:
    """Cell edges of an axis for pcolormesh (midpoints, in log space for a log axis)."""
    v = axis.values.astype(np.float64)
    t = np.log10(v) if axis.log else v
    if t.size == 1:
        half = 0.5 if axis.log else (0.5 * abs(t[0]) if t[0] != 0 else 0.5)
        e = np.array([t[0] - half, t[0] + half])
    else:
        mid = 0.5 * (t[1:] + t[:-1])
        e = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return 10.0 ** e if axis.log else e


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


def plot_phase(result, path, overlay_closed_form_levels: bool = False):
    """Draw a phase diagram into a PNG (atomically) and return the matplotlib Figure.

    Args:
      result: :class:`PhaseResult` or the path of a CSV written by :func:`write_csv` (figures
        are drawn from results files).
      path: output PNG.
      overlay_closed_form_levels: draw contour lines of the closed-form r*
        (``r_star_closed_form`` column, docs/theory.md section 7.2) on top of the colours.

    Undefined cells (NaN: r* not reached within R rounds) are white; cells whose exact solve
    failed its certificate are grey.
    """
    import matplotlib
    from matplotlib import colors
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(result, PhaseResult):
        from sdtheory.sweep.io import read_csv

        result = read_csv(result)
    q, R = result.quantity, result.max_rounds
    Z = np.ma.masked_invalid(result.data)
    fig = Figure(figsize=(7.0, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xe, ye = cell_edges(result.x), cell_edges(result.y)
    if q == "r_star":
        cmap = colors.ListedColormap(
            matplotlib.colormaps["viridis"](np.linspace(0, 1, min(R + 1, 256))))
        norm = colors.BoundaryNorm(np.linspace(-0.5, R + 0.5, min(R + 1, 256) + 1), cmap.N) \
            if R + 1 <= 256 else colors.Normalize(0, R)
    elif q == "acc_round_R":
        cmap = matplotlib.colormaps["viridis"].copy()
        norm = colors.Normalize(0.0, 1.0)
    else:
        cmap = matplotlib.colormaps["RdBu"].copy()
        lim = float(np.nanmax(np.abs(result.data))) if np.isfinite(result.data).any() else 1.0
        lim = max(lim, 1e-6)
        norm = colors.TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    cmap = cmap.with_extremes(bad="white")
    mesh = ax.pcolormesh(xe, ye, Z, cmap=cmap, norm=norm, shading="flat")
    cbar = fig.colorbar(mesh, ax=ax)
    if q == "r_star":
        from matplotlib.ticker import MaxNLocator

        ticks = MaxNLocator(nbins=8, integer=True).tick_values(0, R)
        cbar.set_ticks(ticks[(ticks >= 0) & (ticks <= R)])
    label = _QLABEL[q].replace("round R", f"round R = {R}").replace("0..R", f"0..{R}")
    cbar.set_label(label)
    failed = result.failed
    if failed.any():
        grey = np.ma.masked_where(~failed, np.ones(failed.shape))
        ax.pcolormesh(xe, ye, grey, cmap=colors.ListedColormap(["0.6"]), shading="flat")
    if overlay_closed_form_levels:
        cf = result.values.get("r_star_closed_form")
        if cf is None:
            raise ValueError("this result has no r_star_closed_form column to overlay")
        finite = cf[np.isfinite(cf)]
        if finite.size and finite.max() > finite.min():
            hi = min(float(finite.max()), float(R) if R > 0 else float(finite.max()))
            step = max(1, int(math.ceil((hi - finite.min()) / 8)))
            levels = np.arange(math.floor(finite.min()), hi + 1, step) + 0.5
            Xc, Yc = np.meshgrid(result.x_values, result.y_values)
            cs = ax.contour(Xc, Yc, np.ma.masked_invalid(cf), levels=levels, colors="k",
                            linewidths=0.8)
            ax.clabel(cs, fmt=lambda v: f"{v + 0.5:g}", fontsize=7)
    if result.x.log:
        ax.set_xscale("log")
    if result.y.log:
        ax.set_yscale("log")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(LABELS[result.x.name])
    ax.set_ylabel(LABELS[result.y.name])
    solver = "exact fixed point (E)" if result.solver == "exact" else "linearised (L)"
    title = f"{_QLABEL[q].split(' (')[0].split(':')[0]}, {solver} solver, rounds 0..{R}"
    notes = []
    if q == "r_star":
        notes.append(f"white: 100% not reached by round {R}")
    if overlay_closed_form_levels:
        notes.append("lines: closed-form r* (labelled with the r* that starts below them)")
    if failed.any():
        notes.append(f"grey: {int(failed.sum())} cells failed the certificate")
    fig.suptitle(title + "\n" + _describe(result.config)
                 + ("\n" + "; ".join(notes) if notes else ""), fontsize=9)
    fig.tight_layout()

    def write(tmp):
        fig.savefig(tmp, format="png")

    atomic_write(path, write)
    return fig


