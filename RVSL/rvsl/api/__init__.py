"""Using a trained model: the Predictor, feature extraction, search, dehazing and ONNX export."""

from .predictor import Predictor, fused_features, image_paths

__all__ = ["Predictor", "fused_features", "image_paths"]
