"""Using a trained model: the Predictor, feature extraction, search, dehazing and ONNX export."""

from .predictor import Predictor, image_paths

__all__ = ["Predictor", "image_paths"]
