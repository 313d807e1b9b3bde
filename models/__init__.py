"""The anomaly and risk models, by job.

- :mod:`models.serving`: what the stream runs beside the detectors: model inputs, the Triton client,
  the compromise-risk stacker and the Triton model repository. numpy and scipy only, never torch: the
  worker and the station import this half.
- :mod:`models.training`: torch networks, datasets and splits, training, cross-fitting and ONNX export
  (``ctgwatch train``, ``ctgwatch evaluate risk``). It may import the serving half, never the reverse
  (an import contract in pyproject.toml).
"""
