"""Export a trained dense landmark network to ONNX and check it against torch (dev-only).

    python -m densecap.training.export --run build/training/dense320 --out assets/models/dense320.onnx [--fp16]

(assets/models/<set>.onnx is where the front end looks: `densecap track --landmarks
dense320`.) The ONNX model takes `image` (B, 3, S, S) float32 BGR pixels in [0, 255] and
returns `landmarks` (B, L, 3): x, y in [-1, 1] over the crop and log sigma in the same
units (`landmarks.dense_network.decode` turns them into crop pixels; `DenseLandmarks` runs
the file). Metadata: `landmark_set`, `input_size`, `crop_layout` (eye distance, eye line,
mouth line as fractions of the crop: the run's `TrainConfig.layout`, where the front end then
places the face in the crops it gives this network).
`--fp16` stores the weights as float16 (half the file) with a Cast to float32 in front of
each, so inference stays float32. The parity check runs both on `--check` synthetic
held-out crops and prints the largest difference as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from ..landmarks.dense_network import CROP_LAYOUT, layout_metadata
from ..landmarks.roi import CropLayout
from ..landmarks.onnx_models import load_session
from .network import DenseLandmarkNet

#: Weights with fewer elements stay float32 under --fp16 (not worth a Cast node).
FP16_MIN_ELEMENTS = 64


def export_onnx(network: DenseLandmarkNet, size: int, path: Path, landmark_set: str,
                fp16: bool = False, layout: CropLayout = CROP_LAYOUT) -> Path:
    """Write `network` (eval mode), trained on crops at `layout`, as ONNX (opset 17,
    dynamic batch) to `path`."""
    network = network.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, size, size)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) needs no onnxscript; torch warns it is legacy.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(network, (dummy,), str(tmp), input_names=["image"],
                          output_names=["landmarks"], opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "batch"}, "landmarks": {0: "batch"}})
    proto = onnx.load(str(tmp))
    if fp16:
        _weights_to_fp16(proto.graph)
    metadata = {"landmark_set": landmark_set, "input_size": str(size),
                "crop_layout": layout_metadata(layout)}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    tmp.unlink()
    return path


def _weights_to_fp16(graph: onnx.GraphProto) -> None:
    """Store large float32 initializers as float16, each followed by a Cast to float32."""
    casts = []
    for initializer in graph.initializer:
        if initializer.data_type != onnx.TensorProto.FLOAT:
            continue
        array = numpy_helper.to_array(initializer)
        if array.size < FP16_MIN_ELEMENTS:
            continue
        name = initializer.name
        initializer.CopyFrom(numpy_helper.from_array(array.astype(np.float16), name + "_fp16"))
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)


def parity(network: DenseLandmarkNet, path: Path, images: np.ndarray) -> dict:
    """Largest absolute difference between torch and onnxruntime outputs on images
    (n, S, S, 3) uint8: positions (normalised units and crop px) and log sigma."""
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).astype(np.float32)
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(x)).numpy()
    got = load_session(path).run(["landmarks"], {"image": x})[0]
    size = images.shape[1]
    position = float(np.abs(got[..., :2] - expected[..., :2]).max())
    return {"max_abs_position": position, "max_abs_position_px": position * size / 2,
            "max_abs_log_sigma": float(np.abs(got[..., 2] - expected[..., 2]).max()),
            "images": int(len(images))}


def main(argv: list[str] | None = None) -> int:
    from ..solver import load_face_model
    from .synthetic import SyntheticConfig, SyntheticRenderer
    from .train import HELD_OUT_OFFSET, load_network

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--check", type=int, default=8, help="synthetic crops for the parity check")
    args = parser.parse_args(argv)
    config, network, step = load_network(args.run)
    export_onnx(network, config.size, args.out, config.landmark_set, args.fp16, config.layout())
    renderer = SyntheticRenderer(load_face_model(), config.landmark_set,
                                 SyntheticConfig(size=config.size, crop_zoom=config.crop_zoom))
    images, _, _ = renderer.batch(config.seed + HELD_OUT_OFFSET, 0, args.check)
    result = {"onnx": str(args.out), "bytes": args.out.stat().st_size, "step": step,
              "fp16": args.fp16, **parity(network, args.out, images)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
