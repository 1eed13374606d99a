"""Haze synthesis with the atmospheric scattering model."""

from .depth import DepthEstimator, fit_depth, ground_plane_depth, load_estimator, read_depth_file
from .synthesis import AIRLIGHT_RANGE, BETA_RANGE, normalize_depth, sample_haze_params, synthesize

__all__ = ["synthesize", "sample_haze_params", "normalize_depth", "AIRLIGHT_RANGE", "BETA_RANGE",
           "DepthEstimator", "fit_depth", "ground_plane_depth", "load_estimator", "read_depth_file"]
