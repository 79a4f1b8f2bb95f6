"""The common figure style and helpers: rc parameters, Okabe-Ito colours, captions, saving
through a temporary file."""

from __future__ import annotations

import json

import numpy as np

from sdtheory._io import atomic_write

__all__ = ["STYLE", "COLORS", "PART_COLORS", "CLASS_COLORS", "LEVEL_COLORS", "load_results",
           "pyplot", "save", "caption", "lam_tex", "stamp"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 130,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.5,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
}
"""matplotlib rc parameters shared by every figure."""

COLORS = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
"""Okabe-Ito colour-blind-safe palette."""

PART_COLORS = {"all": COLORS["black"], "clean": COLORS["blue"], "noisy": COLORS["vermillion"]}
CLASS_COLORS = [COLORS[c] for c in ("blue", "orange", "green", "purple", "sky", "vermillion",
                                    "yellow", "black")]
LEVEL_COLORS = {"global": COLORS["black"], "superclass": COLORS["purple"],
                "class": COLORS["blue"], "instance": COLORS["vermillion"]}


def load_results(path) -> dict:
    """Read a JSON results file of :mod:`sdtheory.jobs.figures`."""
    with open(path) as fh:
        return json.load(fh)


def pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, png) -> None:
    """Save through a temporary file beside ``png``, then rename; close the figure."""
    try:
        atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        pyplot().close(fig)


def caption(fig, text: str, y: float = -0.01) -> None:
    """Caption below the axes (lines broken by hand with newlines)."""
    fig.text(0.5, y, text, ha="center", va="top", fontsize=9, color="#333333",
             linespacing=1.45)


def lam_tex(x: float) -> str:
    """lam as a mathtext power of ten where it is one (1e-5 -> 10^{-5})."""
    e = np.log10(x)
    if abs(e - round(e)) < 1e-9:
        return rf"10^{{{int(round(e))}}}"
    m, ex = f"{x:.1e}".split("e")
    return rf"{float(m):g}\times 10^{{{int(ex)}}}"


def stamp(doc: dict) -> str:
    q = " (quick settings)" if doc["config"].get("quick") else ""
    return f"sdtheory {doc['version']}, experiments/{doc['figure']}.toml{q}"


