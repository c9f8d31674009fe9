"""Triton Python-backend model `mobilenet_v2_rmac`: IMAGE (uint8 RGB) -> EMBEDDING (float32).

The computation lives in backbone.py next to this file; the weight files beside it are
built by `make setup` (services/embedder/models/build.sh), never committed. Runs inside
Triton's Python backend stub (interpreter, numpy<2 and OpenCV 4 from .venv-triton), so it
imports nothing from the project.
"""

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

# Provided by the Python backend at run time; not installable from PyPI.
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import backbone  # type: ignore[import-not-found]  # noqa: E402  (beside this file)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.mean_weight = float(parameters.get("mean_weight", "0.5"))
        missing = [
            f
            for f in (backbone.GRAPH, backbone.GRAPH_TEXT, backbone.MEAN)
            if not (HERE / f).is_file()
        ]
        if missing:
            raise pb_utils.TritonModelException(
                f"{HERE}: {', '.join(missing)} missing; build them with `make setup` "
                "(services/embedder/models/build.sh)"
            )
        self.net = backbone.load_net(HERE)
        self.mean = np.load(HERE / backbone.MEAN).astype(np.float32)

    def execute(self, requests: list[Any]) -> list[Any]:
        # Dynamic batching hands over several requests at once: one forward pass for all.
        batches = [pb_utils.get_input_tensor_by_name(r, "IMAGE").as_numpy() for r in requests]
        try:
            embeddings = backbone.embed(
                self.net, np.concatenate(batches), self.mean, self.mean_weight
            )
        except Exception as error:  # an error response for each request, not a dead stub
            return [
                pb_utils.InferenceResponse(error=pb_utils.TritonError(f"embedding failed: {error}"))
                for _ in requests
            ]
        responses = []
        start = 0
        for batch in batches:
            end = start + len(batch)
            output = pb_utils.Tensor("EMBEDDING", embeddings[start:end])
            responses.append(pb_utils.InferenceResponse([output]))
            start = end
        return responses
