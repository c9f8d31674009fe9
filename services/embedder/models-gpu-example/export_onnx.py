"""Export a production embedding model to ONNX with the embedder's contract built in.

NOT run by this project (no PyTorch here, nothing may download weights, no GPU): a
documented starting point for a deployment that has the weights. The exported graph takes
what the embedder sends, IMAGE uint8 [N, S, S, 3] RGB (bars trimmed, resized by the
client), and returns EMBEDDING float32 [N, D], L2-normalised: the ImageNet normalisation,
the layout change and the normalisation of the output all happen inside the graph, so
the embedder does not change with the model.

    pip install torch==2.5.1 onnx==1.17.0
    # SSCD (copy detection, 512 dims; TorchScript from facebookresearch/sscd-copy-detection)
    python export_onnx.py --torchscript sscd_disc_mixup.torchscript.pt --side 288 \
        --out sscd_disc_mixup/1/model.onnx
    # DINOv2 ViT-S/14 (384 dims; torch.hub facebookresearch/dinov2, saved with torch.jit.trace)
    python export_onnx.py --torchscript dinov2_vits14.pt --side 224 --out dinov2_vits14/1/model.onnx

Then copy the model directory (config.pbtxt + 1/model.onnx) into Triton's model
repository on the GPU nodes (the chart's `triton.modelRepository`), set
DEDUP_EMBEDDER_TRITON_MODEL, a new DEDUP_EMBEDDER_COLLECTION (another model's vectors do
not compare) and thresholds measured with bench/embedder_eval.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# ImageNet statistics: what SSCD, DINOv2 and most torchvision-style backbones expect.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def export(torchscript: Path, side: int, out: Path, opset: int = 17) -> None:
    import torch  # type: ignore[import-not-found]  # only where a model is exported

    backbone = torch.jit.load(str(torchscript), map_location="cpu").eval()

    class Contract(torch.nn.Module):  # type: ignore[misc]
        """uint8 NHWC RGB in, unit-length float32 embeddings out."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

        def forward(self, image: Any) -> Any:
            x = image.permute(0, 3, 1, 2).float()
            x = (x - self.mean) / self.std
            return torch.nn.functional.normalize(self.backbone(x), dim=1)

    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        Contract().eval(),
        torch.zeros(1, side, side, 3, dtype=torch.uint8),
        str(out),
        input_names=["IMAGE"],
        output_names=["EMBEDDING"],
        dynamic_axes={"IMAGE": {0: "batch"}, "EMBEDDING": {0: "batch"}},
        opset_version=opset,
    )
    print(f"exported {torchscript} -> {out} (input {side}x{side})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torchscript", type=Path, required=True)
    parser.add_argument("--side", type=int, default=288)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    export(args.torchscript, args.side, args.out)


if __name__ == "__main__":
    main()
