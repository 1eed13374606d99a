"""Haze synthesis with the atmospheric scattering model."""

from .synthesis import AIRLIGHT_RANGE, BETA_RANGE, normalize_depth, sample_haze_params, synthesize

__all__ = ["synthesize", "sample_haze_params", "normalize_depth", "AIRLIGHT_RANGE", "BETA_RANGE"]
