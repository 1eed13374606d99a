"""RVSL: Robust Vehicle Similarity Learning for vehicle re-identification in haze."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``rvsl.Predictor`` on first use, so ``import rvsl`` stays light."""
    if name == "Predictor":
        from .api.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'rvsl' has no attribute {name!r}")


__all__ = ["Predictor", "__version__"]
