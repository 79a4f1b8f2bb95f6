"""Gram and feature models (docs/theory.md section 5): block models and their spectra, dense
Gram matrices (jitter, PSD checks), explicit features."""

from sdtheory.models import block, dense, features
from sdtheory.models.block import *  # noqa: F403
from sdtheory.models.dense import *  # noqa: F403
from sdtheory.models.features import *  # noqa: F403

__all__ = block.__all__ + dense.__all__ + features.__all__
