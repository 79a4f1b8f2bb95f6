"""The phase job's output files: their names, and the results CSV with its figure."""

from __future__ import annotations

import os

__all__ = ["output_names", "output_paths", "write_files"]


def output_paths(result, out_dir) -> tuple[str, str]:
    """CSV and PNG paths in ``out_dir``: phase_<quantity>_<x>_<y>.{csv,png}."""
    return tuple(os.path.join(out_dir, name) for name in
                 output_names(result.quantity, result.x, result.y))


def output_names(quantity: str, x, y) -> tuple[str, str]:
    """CSV and PNG names: phase_<quantity>_<x>_<y>.{csv,png}."""
    stem = f"phase_{quantity}_{x.name}_{y.name}"
    return stem + ".csv", stem + ".png"


def write_files(result, csv_path, png_path, fragile: bool = False) -> None:
    """The results CSV and the figure of a phase diagram (also ``sdtheory explore``'s
    downloads); ``fragile`` hatches the cells whose verdict hangs on the tie tolerance."""
    import numpy as np

    from sdtheory.plots.phase import plot_phase
    from sdtheory.results import write_phase_csv

    write_phase_csv(result, csv_path)
    plot_phase(result, png_path, overlay_closed_form_levels=(
        result.quantity == "r_star" and np.isfinite(result.values["r_star_closed_form"]).any()),
        overlay_fragile=fragile)
