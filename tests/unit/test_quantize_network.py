"""The int8 build of the dense networks (tools/quantize_network.py, run by `make models`)."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

pytest.importorskip("onnxruntime.quantization")

from densecap.landmarks.dense_network import DenseLandmarks  # noqa: E402
from densecap.landmarks.errors import LandmarkError  # noqa: E402
from densecap.landmarks.onnx_models import load_session  # noqa: E402
from densecap.tools import quantize_network as qn  # noqa: E402

COMMITTED = Path(__file__).resolve().parents[2] / "training" / "models" / "dense320.onnx"


@pytest.fixture(scope="module")
def committed():
    if not COMMITTED.is_file():
        pytest.skip(f"{COMMITTED} missing")
    return onnx.load(str(COMMITTED))


@pytest.fixture(scope="module")
def quantized(committed, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "dense320.onnx"
    qn.quantize(COMMITTED, out, qn.render_crops(committed, qn.CALIBRATION_SEED, 16))
    return out


def test_constants_become_float32_initializers_with_the_same_outputs(committed, tmp_path):
    folded = qn.as_initializers(onnx.load(str(COMMITTED)))
    assert not [n for n in folded.graph.node if n.op_type in ("Cast", "Constant")]
    assert onnx.TensorProto.FLOAT16 not in {i.data_type for i in folded.graph.initializer}
    onnx.save(folded, str(tmp_path / "float.onnx"))
    crops = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    x = qn.as_input(crops)
    expected = load_session(COMMITTED).run(None, {"image": x})[0]
    got = load_session(tmp_path / "float.onnx").run(None, {"image": x})[0]
    assert np.array_equal(got, expected)


def test_int8_build_keeps_the_metadata_and_float_ends(committed, quantized):
    proto = onnx.load(str(quantized))
    metadata = {p.key: p.value for p in proto.metadata_props}
    for entry in committed.metadata_props:
        assert metadata[entry.key] == entry.value
    assert "int8" in metadata["quantization"]
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    produced_by = {out: node for node in proto.graph.node for out in node.output}
    convs = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    float_weight = [n.op_type for n in convs if n.input[1] in weights]
    assert float_weight == ["Conv", "Conv", "Gemm"]  # the stem, the last conv, the head
    pointwise, depthwise = [], []
    for node in convs:
        if node.input[1] in weights:
            continue
        stored = weights[produced_by[node.input[1]].input[0]]     # DequantizeLinear's int8
        assert stored.dtype == np.int8
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        (depthwise if group > 1 else pointwise).append(int(np.abs(stored.astype(int)).max()))
    assert pointwise and max(pointwise) <= 64          # 7 bits: no 16-bit saturation
    assert depthwise and max(depthwise) == 127


def test_int8_build_runs_in_the_front_end_close_to_the_float_network(committed, quantized):
    network = DenseLandmarks(quantized, landmark_set="dense320")
    assert network.size == 128 and network.num_landmarks == 320
    report = qn.compare(COMMITTED, quantized, qn.render_crops(committed, qn.CHECK_SEED, 8))
    # 16 calibration renders: about 0.24 px on these 8 (make models: 1024, 0.24 px on 64).
    assert report["mean_position_px"] < 1.0
    assert report["max_abs_log_sigma"] < 0.5


def test_not_a_dense_network_is_a_clear_error(committed):
    bare = onnx.ModelProto()
    bare.CopyFrom(committed)
    del bare.metadata_props[:]
    with pytest.raises(LandmarkError, match="not a dense landmark network export"):
        qn.network_crops(bare)
