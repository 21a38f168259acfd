"""Rebuild a training run folder from an exported network, to fine-tune a committed model
without the run that made it (run folders live in the git-ignored build/):

    python -m densecap.training.import_onnx --model training/models/dense320.onnx \
        --run build/training/run23r

then `python -m densecap.training.train ... --init-from build/training/run23r`.

The export folded each BatchNorm into its convolution (`training.export`); this unfolds
it: the convolution keeps the folded weight, each output channel rescaled to the RMS of a
freshly initialised layer (`channel_scales`), and its BatchNorm gets the mean and variance
of that convolution's output over `STATISTICS_IMAGES` generic renders (stream
`STATISTICS_SEED`) as running statistics, gamma = their standard deviation and beta = their
mean (both divided by the channel's scale) + the folded bias. Eval mode then computes
exactly the export's function (checked against onnxruntime), and train mode (batch
statistics) nearly so. The rescale changes nothing the network computes, only how AdamW
moves it: folded weights carry gamma / sigma of their BatchNorm, 0.01 to 48,000 times a
freshly initialised layer's in dense320, and AdamW's steps are the same size for every
parameter, so a fine-tune at lr 1e-3 from the unscaled import blew up (training/README.md,
run 33; runs 31-32 were made from imports before this rescale, commit 3e4fe87). fp16
weights are read as float32. The folder holds `config.json` (the architecture; the other fields are the
defaults, not the original run's), `checkpoint.pt` (step 0, no optimiser state) and
`imported.json` (the source file and its SHA-256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, astuple
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from ..landmarks.dense_network import CROP_LAYOUT
from ..landmarks.roi import CropLayout
from ..solver import load_face_model
from .export import parity
from .network import DenseLandmarkNet
from .synthetic import SyntheticRenderer, load_footage_frames, render_style
from .train import TrainConfig, image_tensor

STATISTICS_IMAGES = 256
STATISTICS_SEED = 777
#: MobileNetV2 width multipliers tried when matching the export's convolutions.
WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
#: Largest |torch - onnxruntime| output difference accepted after the import.
PARITY_TOLERANCE = 1e-4


def onnx_weights(model: onnx.ModelProto) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                  np.ndarray, np.ndarray]:
    """The convolutions' (weight, bias) in graph order and the head's (weight, bias), as
    float32 (fp16 initialisers followed through their Cast)."""
    values = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    cast = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Cast"}

    def value(name: str) -> np.ndarray:
        return values[cast.get(name, name)].astype(np.float32)

    convolutions = [(value(n.input[1]), value(n.input[2]))
                    for n in model.graph.node if n.op_type == "Conv"]
    (gemm,) = [n for n in model.graph.node if n.op_type == "Gemm"]
    return convolutions, value(gemm.input[1]), value(gemm.input[2])


def modules_of(network: DenseLandmarkNet, kind: type) -> list:
    """The network's modules of type `kind` in definition (= graph) order."""
    return [module for module in network.modules() if isinstance(module, kind)]


def channel_scales(folded: np.ndarray, initial: torch.Tensor) -> np.ndarray:
    """(C_out, 1, 1, 1) float32 factors that bring each output channel of a folded
    convolution weight `folded` (C_out, C_in, k, k) to the RMS of the freshly initialised
    weight `initial` of its layer (1 for an all-zero channel)."""
    rms = np.sqrt((folded.astype(np.float64) ** 2).mean(axis=(1, 2, 3), keepdims=True))
    target = float(initial.detach().pow(2).mean().sqrt())
    return np.where(rms > 0, target / np.maximum(rms, 1e-30), 1.0).astype(np.float32)


def matching_network(convolutions: list, num_landmarks: int, size: int) -> DenseLandmarkNet:
    """The spatial-head DenseLandmarkNet whose convolutions have the export's shapes."""
    shapes = [weight.shape for weight, _ in convolutions]
    for width in WIDTHS:
        network = DenseLandmarkNet(num_landmarks, width, "spatial", size)
        if [tuple(m.weight.shape) for m in modules_of(network, torch.nn.Conv2d)] == shapes:
            return network
    raise ValueError(f"no DenseLandmarkNet width in {WIDTHS} has the export's convolutions")


def crop_zoom(layout: CropLayout) -> float:
    """The `TrainConfig.crop_zoom` whose crops are at `layout` (ValueError: none is)."""
    zoom = layout.eye_distance / CROP_LAYOUT.eye_distance
    if not np.allclose(astuple(CROP_LAYOUT.zoomed(zoom)), astuple(layout), atol=1e-6):
        raise ValueError(f"the export's crop layout {layout} is not {CROP_LAYOUT} zoomed")
    return zoom


def import_onnx(model_path: Path, run: Path, statistics_images: int = STATISTICS_IMAGES) -> dict:
    """Write the run folder `run` from the export `model_path` (BatchNorm statistics over
    `statistics_images` renders); returns what was done."""
    model = onnx.load(model_path)
    meta = {p.key: p.value for p in model.metadata_props}
    size, landmark_set = int(meta["input_size"]), meta["landmark_set"]
    zoom = crop_zoom(CropLayout(*json.loads(meta["crop_layout"])))
    convolutions, head_weight, head_bias = onnx_weights(model)
    torch.manual_seed(STATISTICS_SEED)      # the fresh layers `channel_scales` reads: repeatable
    network = matching_network(convolutions, head_bias.shape[0] // 3, size)
    layers = modules_of(network, torch.nn.Conv2d)
    norms = modules_of(network, torch.nn.BatchNorm2d)
    scales = [torch.from_numpy(channel_scales(weight, conv.weight))
              for conv, (weight, _) in zip(layers, convolutions, strict=True)]
    with torch.no_grad():
        for conv, norm, scale, (weight, bias) in zip(layers, norms, scales, convolutions):
            conv.weight.copy_(torch.from_numpy(weight) * scale)
            norm.weight.copy_(1.0 / scale.flatten())                   # undoes the scale
            norm.bias.copy_(torch.from_numpy(bias))
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)       # eval: the folded convolution
        network.head.weight.copy_(torch.from_numpy(head_weight))
        network.head.bias.copy_(torch.from_numpy(head_bias))
    network.eval()
    renderer = SyntheticRenderer(load_face_model(), landmark_set,
                                 render_style("generic", size, zoom), load_footage_frames())
    crops = np.stack([renderer.sample(STATISTICS_SEED, k).image for k in range(statistics_images)])
    outputs = {}
    hooks = [conv.register_forward_hook(
        lambda module, inputs, output, k=k: outputs.__setitem__(k, output))
        for k, conv in enumerate(layers)]
    with torch.no_grad():
        network(image_tensor(crops))
        for hook in hooks:
            hook.remove()
        for k, (norm, scale) in enumerate(zip(norms, scales)):
            mean = outputs[k].mean((0, 2, 3))
            variance = outputs[k].var((0, 2, 3), unbiased=False)
            norm.bias.add_(mean / scale.flatten())
            norm.weight.copy_(torch.sqrt(variance + norm.eps) / scale.flatten())
            norm.running_mean.copy_(mean)
            norm.running_var.copy_(variance)
    check = parity(network, model_path, crops[:16])
    difference = max(check["max_abs_position"], check["max_abs_log_sigma"])
    if not difference <= PARITY_TOLERANCE:
        raise ValueError(f"imported network differs from {model_path} by {difference}")
    run.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(landmark_set=landmark_set, size=size, width=network.width,
                         head="spatial", crop_zoom=zoom)
    (run / "config.json").write_text(json.dumps(asdict(config), indent=2))
    torch.save({"model": network.state_dict(), "optimiser": {}, "step": 0},
               run / "checkpoint.pt")
    record = {"model": str(model_path),
              "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
              "width": network.width, "landmark_set": landmark_set, "size": size,
              "max_difference_to_onnxruntime": difference}
    (run / "imported.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(import_onnx(args.model, args.run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
