"""Every Triton model config here parses, is named after its folder, and the embedding
models (local and the GPU example) keep the embedder's contract."""

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.embedder.inference import model_info

HERE = Path(__file__).resolve().parents[1]
CONFIGS = sorted(HERE.glob("models*/*/config.pbtxt"))
EMBEDDERS = ("mobilenet_v2_rmac", "sscd_disc_mixup")


def load(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_the_config_parses_and_is_named_after_its_folder(path: Path) -> None:
    config = load(path)
    assert config.name == path.parent.name
    assert config.max_batch_size >= 32
    assert config.HasField("dynamic_batching")


@pytest.mark.parametrize("name", EMBEDDERS)
def test_an_embedding_model_takes_images_and_gives_vectors(name: str) -> None:
    (path,) = [p for p in CONFIGS if p.parent.name == name]
    config = load(path)
    dtype = model_config_pb2.DataType.Name

    def tensor(t: model_config_pb2.ModelInput | model_config_pb2.ModelOutput) -> dict[str, object]:
        # As Triton's metadata shows it: the type without TYPE_, the batch dimension first.
        return {"name": t.name, "datatype": dtype(t.data_type)[5:], "shape": [-1, *t.dims]}

    info = model_info(
        {
            "name": config.name,
            "inputs": [tensor(i) for i in config.input],
            "outputs": [tensor(o) for o in config.output],
        }
    )
    assert info.side >= 64 and info.dim >= 64


def test_the_gpu_example_is_not_in_the_local_repository() -> None:
    assert not (HERE / "models" / "sscd_disc_mixup").exists()
    gpu = load(HERE / "models-gpu-example/sscd_disc_mixup/config.pbtxt")
    assert [g.kind for g in gpu.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
