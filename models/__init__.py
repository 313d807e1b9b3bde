"""Anomaly models: torch models, training, export and the Triton client."""
