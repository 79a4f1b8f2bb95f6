"""The explorer's figures: the cell view (matplotlib, also its PNG download) and the lines
drawn over the page's diagram (the PNG's own closed-form r* contours, and Delta = 0)."""

from __future__ import annotations

import numpy as np

__all__ = ["cell_series", "cell_title", "cell_figure", "overlay_lines", "PARTS",
           "SOLVER_NAMES"]

SOLVER_NAMES = {"exact": "exact (E)", "linear": "linearised (L)"}
PARTS = (("train_acc", "all", "-"), ("clean_acc", "clean", "--"), ("noisy_acc", "noisy", ":"))
"""The accuracies of a round (key of the simulate document, label, matplotlib line style)."""


def cell_series(doc: dict) -> dict:
    """What the cell view draws, from the ``sdtheory simulate`` document: every solver's
    accuracy curves {(solver, part): (rounds, values)}, its PLL student's accuracy (drawn at
    round R + 1), and for K = 3 each (true class, given label) group's mean outputs across the
    rounds of the exact solver in barycentric coordinates {(true, given): (u, v)}."""
    from sdtheory.plots.figures import ternary

    curves, pll, groups = {}, {}, {}
    for name, s in doc["solvers"].items():
        r = np.array([d["round"] for d in s["rounds"]])
        for key, part, _ in PARTS:
            curves[name, part] = (r, np.array([np.nan if d[key] is None else d[key]
                                               for d in s["rounds"]]))
        if s["pll"] is not None:
            pll[name] = s["pll"]["train_acc"]
    if doc["config"]["K"] == 3:
        solver = "exact" if "exact" in doc["solvers"] else next(iter(doc["solvers"]))
        means = {}
        for d in doc["solvers"][solver]["rounds"]:
            for g in d["groups"]:
                means.setdefault((g["true"], g["given"]), []).append(g["p"])
        groups = {k: ternary(np.asarray(v)) for k, v in sorted(means.items())}
    return {"curves": curves, "pll": pll, "groups": groups, "R": doc["config"]["rounds"]}


def cell_title(doc: dict) -> str:
    cfg = doc["config"]
    noise = ("counts file" if cfg["counts"] else
             f"{cfg['noise']} η={cfg['eta']:g} ({'sampled' if cfg['sampled'] else 'exact counts'})")
    return (f"{cfg['model']} model K={cfg['K']} n={cfg['n']} c={cfg['c']:g} d={cfg['d']:g} "
            f"λ={cfg['lam']:g}, {noise}: rounds 0..{cfg['rounds']}")


def cell_figure(view):
    """Accuracy of every round (all / clean / noisy, exact and linearised, the PLL student as
    a marker after the last round), and for K = 3 the (true class, given label) groups' mean
    outputs on the simplex across rounds (exact solver): :func:`cell_series` drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sdtheory.plots.figures import simplex_axes
    from sdtheory.plots.style import CLASS_COLORS

    ser = cell_series(view.doc)
    simplex = bool(ser["groups"])
    fig = Figure(figsize=(10.0 if simplex else 6.4, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if simplex else 1, 1)
    colours = {"exact": "C0", "linear": "C1"}
    R = ser["R"]
    styles = {part: ls for _, part, ls in PARTS}
    for (name, part), (r, y) in ser["curves"].items():
        ax.plot(r, y, styles[part], color=colours[name], lw=1.3,
                label=f"{SOLVER_NAMES[name]}, {part}")
    for name, acc in ser["pll"].items():
        ax.plot([R + 1], [acc], "*", color=colours[name], ms=11,
                label=f"{SOLVER_NAMES[name]}, PLL student (all)")
    ax.set_xlabel("round r (PLL student after the last round)")
    ax.set_ylabel("training accuracy against the true labels")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlim(-0.5, R + 1.5)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    if simplex:
        sx = fig.add_subplot(1, 2, 2)
        simplex_axes(sx)
        for (t, gv), (u, v) in ser["groups"].items():
            sx.plot(u, v, "-", color=CLASS_COLORS[t], lw=1.0, alpha=0.7)
            sx.plot(u[:1], v[:1], "o" if t == gv else "s", color=CLASS_COLORS[t], ms=6,
                    mfc="white" if t != gv else CLASS_COLORS[t])
            sx.plot(u[-1:], v[-1:], ">", color=CLASS_COLORS[t], ms=6)
        sx.set_title("group means (colour: true class; o clean, □ mislabelled at r = 0, "
                     "> last round)", fontsize=8)
    fig.suptitle(cell_title(view.doc), fontsize=9)
    fig.tight_layout()
    return fig


def overlay_lines(view) -> dict:
    """The lines over the diagram, in data coordinates: the closed-form r* contours of the
    PNG (:func:`sdtheory.plots.phase.overlay_r_star_levels`, with their labels) and the
    Delta = 0 boundary. Returns {"r_star": [(xs, ys), ...], "labels": [(x, y, text), ...],
    "delta0": [(xs, ys), ...]}."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.contour import ContourSet
    from matplotlib.figure import Figure

    from sdtheory.plots.phase import contourable, diagram_axes, overlay_r_star_levels

    res = view.result
    out = {"r_star": [], "labels": [], "delta0": []}
    if not contourable(view.delta) and not contourable(res.values["r_star_closed_form"]):
        return out
    fig = Figure(figsize=(7.0, 5.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    diagram_axes(ax, res)
    if overlay_r_star_levels(ax, res, res.values["r_star_closed_form"]):
        for cs in (c for c in ax.get_children() if isinstance(c, ContourSet)):
            out["r_star"] = _segments(cs)
        out["labels"] = [(*t.get_position(), t.get_text()) for t in ax.texts]
    D = view.delta
    if contourable(D) and np.nanmin(D) < 0 < np.nanmax(D):
        Xc, Yc = np.meshgrid(res.x_values, res.y_values)
        out["delta0"] = _segments(ax.contour(Xc, Yc, D, levels=[0.0]))
    return out


def _segments(cs) -> list:
    return [(seg[:, 0].tolist(), seg[:, 1].tolist())
            for level in cs.allsegs for seg in level if len(seg) > 1]
