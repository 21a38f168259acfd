"""Convert a small float TFLite CNN (MediaPipe face/iris networks) to ONNX without TensorFlow.

Build-time only (needs the dev packages ``tflite`` and ``onnx``). The TFLite flatbuffer is
read with the generated schema classes of the ``tflite`` package; fp16 weights (``DEQUANTIZE``
of a constant) are folded to float32 constants at conversion time.

Layout: TFLite activations are NHWC. The ONNX graph keeps the model's NHWC input and outputs
(same tensors as TFLite, so parity checks feed identical arrays) but runs NCHW inside: one
Transpose after the input, one before each 4-D output and before a Reshape of a 4-D tensor.
The leading (batch) dimension of inputs and outputs is symbolic (``BATCH``); the graphs are
otherwise those of TFLite at batch 1 (a Reshape keeps the batch as its leading dimension).

Supported builtin ops: CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, PRELU, RELU, RELU6, LOGISTIC,
MAX_POOL_2D, AVERAGE_POOL_2D, PAD, RESHAPE, CONCATENATION, RESIZE_BILINEAR, DEPTH_TO_SPACE,
DEQUANTIZE and DENSIFY (of constants only: fp16 and block-sparse weights are made dense
float32 at conversion time).
Anything else raises :class:`ConversionError` (e.g. the custom ops of
``face_landmark_with_attention.tflite``).
"""

from __future__ import annotations

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
#: The symbolic leading dimension of inputs and outputs: several images run in one call (both
#: eyes through the iris network: 18 % less time than two calls, the per-node overhead paid
#: once).
BATCH = "batch"


class ConversionError(Exception):
    """The TFLite model uses something this converter does not handle."""


_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
}
_NCHW_FROM_NHWC = [0, 3, 1, 2]
_NHWC_FROM_NCHW = [0, 2, 3, 1]


def _same_pads(in_size, kernel, stride, dilation=1):
    """TensorFlow SAME padding for one spatial axis -> (before, after)."""
    effective = (kernel - 1) * dilation + 1
    out_size = -(-in_size // stride)
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


_INDEX_VECTORS = {
    tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
    tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


def _index_vector(kind, table):
    vector = _INDEX_VECTORS[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def densify(values, shape, sparsity) -> np.ndarray:
    """Dense array of a TFLite sparse tensor (TFLite's FormatConverter, in numpy).

    Parameters
    ----------
    values : (V,) the stored non-zero values, in traversal order
    shape : the dense shape
    sparsity : ``tflite.SparsityParameters`` (traversal order, block map, per-level metadata)
    """
    rank = len(shape)
    order = [int(d) for d in sparsity.TraversalOrderAsNumpy()]
    block_map = ([int(d) for d in sparsity.BlockMapAsNumpy()]
                 if sparsity.BlockMapLength() else [])
    levels = []
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == tflite.DimensionType.DENSE:
            levels.append((meta.DenseSize(), None, None))
        else:
            levels.append((None, _index_vector(meta.ArraySegmentsType(), meta.ArraySegments()),
                           _index_vector(meta.ArrayIndicesType(), meta.ArrayIndices())))
    block_sizes = {block_map[k]: levels[order.index(rank + k)][0] for k in range(len(block_map))}
    # Enumerate the expanded coordinates of every stored value, level by level.
    coords = np.zeros((1, len(order)), np.int64)
    positions = np.zeros(1, np.int64)
    for level, (dense_size, segments, indices) in enumerate(levels):
        dim = order[level]
        if dense_size is not None:
            coords = np.repeat(coords, dense_size, axis=0)
            local = np.tile(np.arange(dense_size), len(positions))
            positions = np.repeat(positions, dense_size) * dense_size + local
        else:
            counts = segments[positions + 1] - segments[positions]
            starts = np.repeat(segments[positions], counts)
            local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            positions = starts + local
            coords = np.repeat(coords, counts, axis=0)
            local = indices[positions]
        coords[:, dim] = local
    if len(positions) != values.size:
        raise ConversionError("sparse tensor metadata does not match its values")
    dense_coords = coords[:, :rank].copy()
    for k, dim in enumerate(block_map):
        dense_coords[:, dim] = coords[:, dim] * block_sizes[dim] + coords[:, rank + k]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(dense_coords.T)] = values.ravel()
    return dense


def _batched(shape):
    """A TFLite tensor shape with its (batch 1) leading dimension made symbolic."""
    return [BATCH] + list(shape[1:]) if shape else shape


class _Converter:
    def __init__(self, model_bytes: bytes, graph_name: str):
        self.model = tflite.Model.GetRootAsModel(model_bytes, 0)
        if self.model.SubgraphsLength() != 1:
            raise ConversionError("only single-subgraph models are supported")
        self.graph = self.model.Subgraphs(0)
        self.graph_name = graph_name
        self.nodes = []
        self.initializers = []
        self.constants = {}  # tensor index -> np.ndarray (float32 after folding)
        self.names = {}  # tensor index -> ONNX value name (NCHW for 4-D activations)
        self.counter = 0

    # -- tensors ---------------------------------------------------------------------------
    def shape(self, index):
        return [int(s) for s in self.graph.Tensors(index).ShapeAsNumpy()]

    def buffer_array(self, index):
        tensor = self.graph.Tensors(index)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        dtype = _NUMPY_TYPES.get(tensor.Type())
        if dtype is None:
            raise ConversionError(f"tensor type {tensor.Type()} not supported")
        values = np.frombuffer(data.tobytes(), dtype=dtype)
        if tensor.Sparsity() is not None:
            return densify(values, self.shape(index), tensor.Sparsity())
        return values.reshape(self.shape(index))

    def constant(self, index):
        if index not in self.constants:
            array = self.buffer_array(index)
            if array is None:
                raise ConversionError(f"tensor {index} is not a constant")
            self.constants[index] = array
        return self.constants[index]

    def fresh(self, stem):
        self.counter += 1
        return f"{stem}_{self.counter}"

    def add_initializer(self, array, stem):
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type, inputs, outputs=None, **attrs):
        outputs = outputs or [self.fresh(op_type.lower())]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs[0]

    def value(self, index):
        """ONNX name of an activation or constant input (constants are emitted as-is)."""
        if index in self.names:
            return self.names[index]
        array = self.constant(index).astype(np.float32) if self.graph.Tensors(index).Type() in (
            tflite.TensorType.FLOAT16, tflite.TensorType.FLOAT32) else self.constant(index)
        if array.ndim == 4:
            array = array.transpose(_NCHW_FROM_NHWC)
        self.names[index] = self.add_initializer(array, "const")
        return self.names[index]

    def activation(self, name, code):
        if code == tflite.ActivationFunctionType.NONE:
            return name
        if code == tflite.ActivationFunctionType.RELU:
            return self.node("Relu", [name])
        if code == tflite.ActivationFunctionType.RELU6:
            low = self.add_initializer(np.float32(0.0), "zero")
            high = self.add_initializer(np.float32(6.0), "six")
            return self.node("Clip", [name, low, high])
        raise ConversionError(f"fused activation {code} not supported")

    # -- ops -------------------------------------------------------------------------------
    def convert(self) -> onnx.ModelProto:
        graph = self.graph
        inputs, outputs = [], []
        for i in range(graph.InputsLength()):
            index = graph.Inputs(i)
            name = graph.Tensors(index).Name().decode()
            shape = self.shape(index)
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                        _batched(shape)))
            self.names[index] = (self.node("Transpose", [name], perm=_NCHW_FROM_NHWC)
                                 if len(shape) == 4 else name)
        for i in range(graph.OperatorsLength()):
            self.convert_operator(graph.Operators(i))
        for i in range(graph.OutputsLength()):
            index = graph.Outputs(i)
            name = graph.Tensors(index).Name().decode()
            shape = self.shape(index)
            if len(shape) == 4:
                self.node("Transpose", [self.names[index]], [name], perm=_NHWC_FROM_NCHW)
            else:
                self.node("Identity", [self.names[index]], [name])
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                         _batched(shape)))
        onnx_graph = helper.make_graph(self.nodes, self.graph_name, inputs, outputs,
                                       self.initializers)
        model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="densecap.tools.tflite_to_onnx")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def convert_operator(self, op):
        code_entry = self.model.OperatorCodes(op.OpcodeIndex())
        code = max(code_entry.BuiltinCode(), code_entry.DeprecatedBuiltinCode())
        if code == tflite.BuiltinOperator.CUSTOM:
            raise ConversionError(f"custom op {code_entry.CustomCode().decode()} not supported")
        op_name = _OP_NAMES.get(code, str(code))
        handler = getattr(self, "op_" + op_name.lower(), None)
        if handler is None:
            raise ConversionError(f"builtin op {op_name} not supported")
        ins = [int(x) for x in op.InputsAsNumpy()]
        outs = [int(x) for x in op.OutputsAsNumpy()]
        handler(op, ins, outs)

    def options(self, op, cls):
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def op_densify(self, op, ins, outs):
        self.constants[outs[0]] = self.constant(ins[0])

    def op_resize_bilinear(self, op, ins, outs):
        opts = self.options(op, tflite.ResizeBilinearOptions)
        if opts.AlignCorners():
            mode = "align_corners"
        elif opts.HalfPixelCenters():
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        batch, height, width, channels = self.shape(outs[0])
        sizes = self.add_initializer(np.array([batch, channels, height, width], np.int64), "sizes")
        self.names[outs[0]] = self.node("Resize", [self.value(ins[0]), "", "", sizes],
                                        mode="linear", coordinate_transformation_mode=mode)

    def op_depth_to_space(self, op, ins, outs):
        opts = self.options(op, tflite.DepthToSpaceOptions)
        self.names[outs[0]] = self.node("DepthToSpace", [self.value(ins[0])],
                                        blocksize=opts.BlockSize(), mode="DCR")

    def op_dequantize(self, op, ins, outs):
        self.constants[outs[0]] = self.constant(ins[0]).astype(np.float32)

    def _conv(self, op, ins, outs, depthwise):
        opts = self.options(op, tflite.DepthwiseConv2DOptions if depthwise
                            else tflite.Conv2DOptions)
        weight = self.constant(ins[1]).astype(np.float32)
        _, in_h, in_w, in_c = self.shape(ins[0])
        if depthwise:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW]
            weight = weight.transpose(3, 0, 1, 2)
            group = in_c
        else:  # [O, KH, KW, I] -> [O, I, KH, KW]
            weight = weight.transpose(0, 3, 1, 2)
            group = 1
        kh, kw = weight.shape[2:]
        dil_h, dil_w = opts.DilationHFactor(), opts.DilationWFactor()
        if opts.Padding() == tflite.Padding.SAME:
            top, bottom = _same_pads(in_h, kh, opts.StrideH(), dil_h)
            left, right = _same_pads(in_w, kw, opts.StrideW(), dil_w)
        else:
            top = bottom = left = right = 0
        args = [self.value(ins[0]), self.add_initializer(weight, "weight")]
        if len(ins) > 2 and ins[2] >= 0:
            args.append(self.add_initializer(self.constant(ins[2]).astype(np.float32), "bias"))
        out = self.node("Conv", args, kernel_shape=[kh, kw], strides=[opts.StrideH(), opts.StrideW()],
                        dilations=[dil_h, dil_w], pads=[top, left, bottom, right], group=group)
        self.names[outs[0]] = self.activation(out, opts.FusedActivationFunction())

    def op_conv_2d(self, op, ins, outs):
        self._conv(op, ins, outs, depthwise=False)

    def op_depthwise_conv_2d(self, op, ins, outs):
        self._conv(op, ins, outs, depthwise=True)

    def operand(self, index, output_rank):
        """A binary-op operand; a constant vector broadcast over channels becomes (C, 1, 1)."""
        if index not in self.names and output_rank == 4:
            array = self.constant(index).astype(np.float32)
            if array.ndim < 4 and array.size > 1:
                return self.add_initializer(array.reshape(-1, 1, 1), "const")
        return self.value(index)

    def _binary(self, op, ins, outs, onnx_op, options_cls):
        rank = len(self.shape(outs[0]))
        out = self.node(onnx_op, [self.operand(ins[0], rank), self.operand(ins[1], rank)])
        opts = self.options(op, options_cls) if op.BuiltinOptions() is not None else None
        code = opts.FusedActivationFunction() if opts else tflite.ActivationFunctionType.NONE
        self.names[outs[0]] = self.activation(out, code)

    def op_add(self, op, ins, outs):
        self._binary(op, ins, outs, "Add", tflite.AddOptions)

    def op_mul(self, op, ins, outs):
        self._binary(op, ins, outs, "Mul", tflite.MulOptions)

    def op_prelu(self, op, ins, outs):
        """PReLU(x) = x + (1 - alpha) * Relu(-x), as two 1x1 depthwise convolutions.

        onnxruntime's PRelu is a slow broadcast kernel and breaks the NCHWc layout of its
        optimised CPU graph (half of the face mesh's time); depthwise convolutions with a
        fused Relu and an Add stay in it. Exact up to float rounding for any alpha.
        """
        alpha = self.constant(ins[1]).astype(np.float32)
        channels = alpha.shape[-1]
        if alpha.size != channels or len(self.shape(ins[0])) != 4:
            raise ConversionError("only per-channel PReLU on 4-D tensors is supported")
        source = self.value(ins[0])
        negate = self.add_initializer(np.full((channels, 1, 1, 1), -1.0, np.float32), "negate")
        gain = self.add_initializer((1.0 - alpha).reshape(channels, 1, 1, 1), "prelu_gain")
        depthwise = {"group": channels, "kernel_shape": [1, 1]}
        negative = self.node("Relu", [self.node("Conv", [source, negate], **depthwise)])
        scaled = self.node("Conv", [negative, gain], **depthwise)
        self.names[outs[0]] = self.node("Add", [source, scaled])

    def op_relu(self, op, ins, outs):
        self.names[outs[0]] = self.node("Relu", [self.value(ins[0])])

    def op_relu6(self, op, ins, outs):
        self.names[outs[0]] = self.activation(self.value(ins[0]),
                                              tflite.ActivationFunctionType.RELU6)

    def op_logistic(self, op, ins, outs):
        self.names[outs[0]] = self.node("Sigmoid", [self.value(ins[0])])

    def _pool(self, op, ins, outs, onnx_op):
        opts = self.options(op, tflite.Pool2DOptions)
        _, in_h, in_w, _ = self.shape(ins[0])
        kh, kw = opts.FilterHeight(), opts.FilterWidth()
        if opts.Padding() == tflite.Padding.SAME:
            top, bottom = _same_pads(in_h, kh, opts.StrideH())
            left, right = _same_pads(in_w, kw, opts.StrideW())
        else:
            top = bottom = left = right = 0
        extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
        out = self.node(onnx_op, [self.value(ins[0])], kernel_shape=[kh, kw],
                        strides=[opts.StrideH(), opts.StrideW()],
                        pads=[top, left, bottom, right], **extra)
        self.names[outs[0]] = self.activation(out, opts.FusedActivationFunction())

    def op_max_pool_2d(self, op, ins, outs):
        self._pool(op, ins, outs, "MaxPool")

    def op_average_pool_2d(self, op, ins, outs):
        self._pool(op, ins, outs, "AveragePool")

    def op_pad(self, op, ins, outs):
        paddings = self.constant(ins[1]).astype(np.int64)  # (rank, 2)
        if paddings.shape[0] == 4:
            paddings = paddings[_NCHW_FROM_NHWC]
            if not paddings[[0, 2, 3]].any() and paddings[1, 0] == 0:
                self.names[outs[0]] = self._pad_channels(ins[0], int(paddings[1, 1]))
                return
        pads = self.add_initializer(np.concatenate([paddings[:, 0], paddings[:, 1]]), "pads")
        self.names[outs[0]] = self.node("Pad", [self.value(ins[0]), pads], mode="constant")

    def _pad_channels(self, index, extra):
        """Zero channels appended to a 4-D tensor, as a 1x1 convolution with identity weights.

        The residual blocks of BlazeFace/face mesh/iris widen their shortcut this way before
        an Add. onnxruntime runs Pad outside its blocked (NCHWc) CPU layout, and with it every
        Add that follows until the next pooling (reorders in and out each time); the
        convolution stays in the layout and lets the Add fuse into the next convolution
        (face mesh 15-20 % faster). Exact: each output is 1 * x or a sum of zeros.
        """
        channels = self.shape(index)[3]
        weight = np.zeros((channels + extra, channels, 1, 1), np.float32)
        weight[np.arange(channels), np.arange(channels), 0, 0] = 1.0
        return self.node("Conv", [self.value(index), self.add_initializer(weight, "widen")],
                         kernel_shape=[1, 1])

    def op_reshape(self, op, ins, outs):
        source = self.value(ins[0])
        if len(self.shape(ins[0])) == 4:
            source = self.node("Transpose", [source], perm=_NHWC_FROM_NCHW)
        new_shape = self.shape(outs[0])
        if not new_shape or new_shape[0] != 1:
            raise ConversionError(f"reshape to {new_shape}: only reshapes that keep the batch "
                                  f"as the leading dimension are supported")
        if len(new_shape) == 4:
            raise ConversionError("reshape to a 4-D tensor is not supported")
        target = self.add_initializer(np.array([-1] + new_shape[1:], dtype=np.int64), "shape")
        self.names[outs[0]] = self.node("Reshape", [source, target])

    def op_concatenation(self, op, ins, outs):
        opts = self.options(op, tflite.ConcatenationOptions)
        rank = len(self.shape(outs[0]))
        axis = opts.Axis() % rank
        if rank == 4:
            axis = _NCHW_FROM_NHWC.index(axis)
        out = self.node("Concat", [self.value(i) for i in ins], axis=axis)
        self.names[outs[0]] = self.activation(out, opts.FusedActivationFunction())


def convert_tflite(model_bytes: bytes, graph_name: str = "model") -> onnx.ModelProto:
    """Convert a TFLite flatbuffer to an ONNX model (NHWC input/outputs, NCHW inside).

    Parameters
    ----------
    model_bytes : bytes
        Contents of a ``.tflite`` file.
    graph_name : str
        Name of the ONNX graph.

    Raises
    ------
    ConversionError
        For custom ops, unsupported builtin ops or unsupported tensor types.
    """
    return _Converter(model_bytes, graph_name).convert()
