"""Plotting: one function per figure, reading results files only (no solver is imported).

The package's names are those of its submodules' ``__all__``: :mod:`~sdtheory.plots.style`
(colours, saving), :mod:`~sdtheory.plots.phase` (phase diagrams),
:mod:`~sdtheory.plots.figures` (the figures of ``sdtheory figures``) and
:mod:`~sdtheory.plots.probe` (probe results)."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__)
