"""Torch networks, datasets and splits, training, cross-fitting and ONNX export of the served models."""
