"""Gram and feature models (docs/theory.md section 5): block models and their spectra, dense
Gram matrices (jitter, PSD checks), explicit features. The package's names are those of the
submodules' ``__all__``."""

from sdtheory._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__)
