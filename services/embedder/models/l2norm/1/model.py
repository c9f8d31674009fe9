"""Triton Python-backend model `l2norm`: divides each row of INPUT by its L2 norm.

Runs inside Triton's Python backend stub (interpreter and numpy<2 from .venv-triton), not in
the project's .venv, so it imports nothing from the project.
"""

from typing import Any

import numpy as np

# Provided by the Python backend at run time; not installable from PyPI.
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]


class TritonPythonModel:
    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy().astype(np.float32)
            norm = np.linalg.norm(x, axis=-1, keepdims=True)
            # A zero row has no direction: keep it zero instead of returning NaN.
            y = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT", y)]))
        return responses
