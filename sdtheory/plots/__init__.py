"""Plotting: one function per figure, reading results files only (no solver is imported)."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "plot_phase": "phase", "cell_edges": "phase",
    "plot_approximation": "figures", "plot_label_averaging": "figures",
    "plot_pll_vs_sd": "figures", "plot_min_rounds": "figures",
    "plot_phase_eta_lam": "figures", "plot_phase_eta_gap": "figures",
    "plot_phase_pll": "figures",
    "STYLE": "style", "COLORS": "style", "load_results": "style",
})
