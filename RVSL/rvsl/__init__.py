"""RVSL: Robust Vehicle Similarity Learning for vehicle re-identification in haze."""

__version__ = "0.1.0"
