"""Gram and feature models (docs/theory.md section 5): block models and their spectra, dense
Gram matrices (jitter, PSD checks), explicit features."""

from sdtheory.models.block import (
                                   BlockModel,
                                   Eigen,
                                   level_eigenvalues,
                                   psd_margin,
                                   three_level,
                                   two_level,
)
from sdtheory.models.dense import (
                                   PSD_RTOL,
                                   is_psd,
                                   jitter,
                                   min_eigenvalue,
                                   nearest_psd,
                                   psd_refusal,
                                   square_matrix,
)
from sdtheory.models.features import (
                                   Features,
                                   feature_factor,
                                   gmm_features,
                                   gmm_means,
                                   gram_from_features,
)

__all__ = [
    "BlockModel",
    "Eigen",
    "level_eigenvalues",
    "psd_margin",
    "two_level",
    "three_level",
    "PSD_RTOL",
    "square_matrix",
    "is_psd",
    "psd_refusal",
    "jitter",
    "min_eigenvalue",
    "nearest_psd",
    "Features",
    "feature_factor",
    "gmm_means",
    "gmm_features",
    "gram_from_features",
]
