"""Triton Python-backend model that serves an ONNX file with onnxruntime (CPU).

The embedded tritonserver (nvidia-pytriton) has only the Python backend; this
file is placed next to ``model.onnx`` in the local twin of the production
model repository (models/serving/repository.py), so the same ONNX file answers under
the same model name, tensor names and shapes as the production ``onnxruntime``
backend on GPU. Requests that Triton's dynamic batcher groups arrive together
in ``execute`` and run as one onnxruntime call.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("CTGWATCH_ORT_THREADS", "1"))
        self.session = ort.InferenceSession(
            os.path.join(version_dir, "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        sizes = [a.shape[0] for a in arrays]
        outputs = self.session.run(self.output_names, {self.input_name: np.concatenate(arrays).astype(np.float32)})
        responses, start = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor(name, out[start : start + size]) for name, out in zip(self.output_names, outputs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
