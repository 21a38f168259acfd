"""A dense landmark network (`training/models/<set>.onnx`) -> its int8 build for the front end.

    python -m densecap.tools.quantize_network --model training/models/dense320.onnx \\
        --out assets/models/dense320.onnx [--calibration 1024] [--check 64]

`make models` runs this: the committed network stays the trained float one (fp16 weights,
`training/export.py`), the front end runs the int8 one (onnxruntime's static QDQ
quantization, folded into QLinearConv / QLinearAdd at load): the crop and its mirror in
0.7 instead of 1.1 ms on one thread. Measured on the devset, all 400 images, before
choosing (training/README.md, "The int8 build"):

- per-channel symmetric int8 weights, uint8 activations, ranges from the min and max over
  `--calibration` synthetic renders (`render_style("capture-close")` at the network's crop
  size and layout, stream `CALIBRATION_SEED`: neither a training nor a held-out stream);
- the pointwise convolutions' weights in 7 bits (`reduce_range`): onnxruntime's int8
  matrix kernels on x86 CPUs without VNNI add pairs of 8-bit products in 16 bits, which
  full-range weights can saturate (255 x 127 x 2 > 32767; 255 x 64 x 2 is not), so the
  integer sums are exact on every CPU (a Ryzen before Zen 4 or a Core before Ice Lake as
  well as this machine's VNNI) and the landmarks differ between CPUs only by float
  rounding; the depthwise ones keep 8 bits (`weight_overrides`: those kernels widen to 16
  bits before multiplying, nothing to saturate);
- float32 kept for the stem convolution (3 input channels: faster in float32), the last
  convolution (the features the head reads: quantized, the fit's jitter on talking_1.mp4
  was 4 % above the float network's, with them in float 1.5 %) and the head (`Gemm`, the
  landmark coordinates: quantizing it cost 0.07 points of raw NME).

onnxruntime advises (a logged warning, filtered out here) its pre-processing first: that
folds constants and BatchNorms, which the export has none of once `as_initializers` has run.
The metadata (`landmark_set`, `input_size`, `crop_layout`) is copied, plus `quantization`
saying how the file was made. `--check` held-out renders (stream `CHECK_SEED`) compare the
int8 file with the float source: landmark differences in crop px and log sigma, printed as
JSON. Needs `onnx` and onnxruntime's quantization tools (dev-only, like training/).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..landmarks.dense_network import CROP_LAYOUT, read_metadata
from ..landmarks.onnx_models import load_session

#: The synthetic stream whose renders set the activation ranges (training streams are the
#: run seeds 0-45, their held-out streams seed + 1000).
CALIBRATION_SEED = 770001
#: The synthetic stream of the int8-vs-float check.
CHECK_SEED = 770002
#: Renders the activation ranges are taken over (4x fewer moved the devset by 0.01 points).
CALIBRATION_CROPS = 1024
QUANTIZATION_NOTE = ("int8 QDQ: per-channel symmetric weights (pointwise 7-bit, depthwise "
                     "8-bit), uint8 activations "
                     "(min-max over {count} renders of stream {seed}); the first and last Conv "
                     "and the head Gemm in float32")


def as_initializers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with every constant as a float32 initializer: the float16 weights
    (`training/export.py --fp16`: each behind a Cast to float32) and the Constant nodes (the
    ReLU6 bounds), so the quantizer sees each weight as a constant and each Clip's range
    (then it quantizes a convolution's output over [0, 6] and drops the Clip)."""
    graph = proto.graph
    halves = {init.name: init for init in graph.initializer
              if init.data_type == onnx.TensorProto.FLOAT16}
    for node in list(graph.node):
        if node.op_type == "Cast" and node.input[0] in halves:
            array = numpy_helper.to_array(halves.pop(node.input[0])).astype(np.float32)
        elif node.op_type == "Constant" and node.attribute[0].name == "value":
            array = numpy_helper.to_array(node.attribute[0].t)
        else:
            continue
        graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
        graph.node.remove(node)
    kept = [init for init in graph.initializer if init.data_type != onnx.TensorProto.FLOAT16
            or init.name in halves]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return proto


def weight_overrides(graph: onnx.GraphProto) -> dict:
    """onnxruntime's `TensorQuantOverrides`: full 8-bit weights for the depthwise
    convolutions (group > 1), whose int8 kernels cannot saturate (see the module text)."""
    depthwise = [node.input[1] for node in graph.node if node.op_type == "Conv"
                 and any(a.name == "group" and a.i > 1 for a in node.attribute)]
    return {name: [{"axis": 0, "reduce_range": False}] for name in depthwise}


def network_crops(proto: onnx.ModelProto) -> tuple[str, int, float]:
    """(landmark set, crop size, crop zoom) from a dense network's metadata."""
    landmark_set, size, layout = read_metadata(
        {entry.key: entry.value for entry in proto.metadata_props})
    return landmark_set, size, layout.eye_distance / CROP_LAYOUT.eye_distance


def render_crops(proto: onnx.ModelProto, seed: int, count: int) -> np.ndarray:
    """`count` synthetic crops (count, S, S, 3) uint8 BGR of stream `seed`, as the network's
    training saw them (capture-close style, its crop size and zoom)."""
    from ..solver import load_face_model
    from ..training.synthetic import SyntheticRenderer, load_footage_frames, render_style
    landmark_set, size, zoom = network_crops(proto)
    renderer = SyntheticRenderer(load_face_model(), landmark_set,
                                 render_style("capture-close", size, zoom), load_footage_frames())
    images, _, _ = renderer.batch(seed, 0, count)
    return images


def as_input(crops_bgr: np.ndarray) -> np.ndarray:
    """(n, S, S, 3) uint8 -> the networks' `image` input (n, 3, S, S) float32."""
    return np.ascontiguousarray(crops_bgr.transpose(0, 3, 1, 2), dtype=np.float32)


class _Crops:
    """onnxruntime's `CalibrationDataReader` protocol over crops, one at a time."""

    def __init__(self, crops_bgr: np.ndarray):
        self._inputs = iter(as_input(crops_bgr)[:, None])

    def get_next(self):
        batch = next(self._inputs, None)
        return None if batch is None else {"image": batch}


class _WithoutPreprocessingAdvice(logging.Filter):
    """Drops onnxruntime's logged advice to pre-process the model (see the module text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize(source: Path, out: Path, calibration: np.ndarray) -> Path:
    """Write the int8 build of the network in `source` to `out` (see the module text), its
    activation ranges over `calibration` crops (n, S, S, 3) uint8."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    proto = as_initializers(onnx.load(str(source)))
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    convs = [node.name for node in proto.graph.node if node.op_type == "Conv"]
    out.parent.mkdir(parents=True, exist_ok=True)
    advice = _WithoutPreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        with tempfile.TemporaryDirectory() as folder:
            float_path = Path(folder) / "float.onnx"
            onnx.save(proto, str(float_path))
            quantize_static(
                str(float_path), str(out), _Crops(calibration), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv", "Clip", "Add"],
                nodes_to_exclude=[convs[0], convs[-1]], per_channel=True, reduce_range=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"TensorQuantOverrides": weight_overrides(proto.graph)})
    finally:
        logging.getLogger().removeFilter(advice)
    quantized = onnx.load(str(out))
    del quantized.metadata_props[:]
    metadata["quantization"] = QUANTIZATION_NOTE.format(count=len(calibration),
                                                        seed=CALIBRATION_SEED)
    for key, value in metadata.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(quantized, str(out))
    return out


def compare(source: Path, quantized: Path, crops_bgr: np.ndarray) -> dict:
    """How far the int8 file's outputs are from the float source's on crops (n, S, S, 3):
    landmark positions in crop px (mean and max) and log sigma (max)."""
    x = as_input(crops_bgr)
    expected = load_session(source).run(None, {"image": x})[0]
    got = load_session(quantized).run(None, {"image": x})[0]
    size = crops_bgr.shape[1]
    position = np.linalg.norm(got[..., :2] - expected[..., :2], axis=-1) * (size / 2)
    return {"images": int(len(x)), "mean_position_px": round(float(position.mean()), 4),
            "max_position_px": round(float(position.max()), 4),
            "max_abs_log_sigma": round(float(np.abs(got[..., 2] - expected[..., 2]).max()), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the float network (ONNX)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calibration", type=int, default=CALIBRATION_CROPS,
                        help="synthetic renders the activation ranges are taken over")
    parser.add_argument("--check", type=int, default=64,
                        help="held-out renders comparing the int8 file with the float one")
    args = parser.parse_args(argv)
    if args.calibration < 1 or args.check < 1:
        parser.error("--calibration and --check need at least one render")
    if not args.model.is_file():
        parser.error(f"{args.model} not found")
    source = onnx.load(str(args.model))
    quantize(args.model, args.out, render_crops(source, CALIBRATION_SEED, args.calibration))
    report = compare(args.model, args.out, render_crops(source, CHECK_SEED, args.check))
    print(json.dumps({"model": str(args.model), "out": str(args.out),
                      "bytes": args.out.stat().st_size, "calibration_renders": args.calibration,
                      **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
