"""The fuzzer's seed corpus: small, valid ONNX models that dlc compiles in about a second each.

Each seed exercises a different corner of the importer: convolutions and pooling, shape tensors (Reshape,
Slice, Expand take int64 initializers that the mutator likes to corrupt), reductions, indexing, control flow
(If), Constant nodes (tensors inside attributes), symbolic dims and non-float dtypes. Every seed passes
``onnx.checker`` and strict shape inference (a test checks it), so that what goes wrong in a fuzz case is
what the mutator did.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_F = TensorProto.FLOAT


def _vi(name: str, shape, elem: int = _F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "seed", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dlc.fuzz")
    model.ir_version = 8
    return model


def _w(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.5


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def conv_relu() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              strides=[1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    return _model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 4, 8, 8])], [("w", _w(4, 3, 3, 3)), ("b", _w(4))])


def conv_bn_pool() -> onnx.ModelProto:
    k = 4
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], strides=[2, 2], group=1),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-5),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"], axis=1)]
    inits = [("w", _w(k, 2, 3, 3)), ("s", np.ones(k, np.float32)), ("bb", _w(k, seed=1)),
             ("m", _w(k, seed=2)), ("v", np.ones(k, np.float32))]
    return _model(nodes, [_vi("x", ["N", 2, 9, 9])], [_vi("y", ["N", k])], inits)


def depthwise_avgpool() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], group=4, pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    return _model(nodes, [_vi("x", [1, 4, 6, 6])], [_vi("y", [1, 4, 3, 3])], [("w", _w(4, 1, 3, 3))])


def conv_transpose() -> onnx.ModelProto:
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    return _model(nodes, [_vi("x", [1, 3, 4, 4])], [_vi("y", [1, 2, 8, 8])], [("w", _w(3, 2, 2, 2))])


def gemm_sigmoid() -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1, alpha=1.0, beta=1.0),
             helper.make_node("Sigmoid", ["g"], ["y"])]
    return _model(nodes, [_vi("x", [2, 8])], [_vi("y", [2, 4])], [("w", _w(4, 8)), ("b", _w(4))])


def matmul_softmax() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Softmax", ["a"], ["y"], axis=-1)]
    return _model(nodes, [_vi("x", ["B", 3, 4])], [_vi("y", ["B", 3, 5])], [("w", _w(4, 5)), ("b", _w(5))])


def reshape_transpose() -> onnx.ModelProto:
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0])]
    return _model(nodes, [_vi("x", [2, 3, 4])], [_vi("y", [6, 4])], [("shape", _i64(4, 6))])


def split_concat() -> onnx.ModelProto:
    nodes = [helper.make_node("Split", ["x", "split"], ["a", "b"], axis=1),
             helper.make_node("Concat", ["b", "a"], ["y"], axis=1)]
    return _model(nodes, [_vi("x", [2, 6])], [_vi("y", [2, 6])], [("split", _i64(2, 4))])


def reduce_ops() -> onnx.ModelProto:
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("ReduceSum", ["d", "axes"], ["y"], keepdims=0)]
    return _model(nodes, [_vi("x", [2, 5, 3])], [_vi("y", [2, 3])], [("axes", _i64(1))])


def gather_indices() -> onnx.ModelProto:
    nodes = [helper.make_node("Gather", ["table", "idx"], ["g"], axis=0),
             helper.make_node("Tanh", ["g"], ["y"])]
    return _model(nodes, [_vi("idx", [3], TensorProto.INT64)], [_vi("y", [3, 4])], [("table", _w(5, 4))])


def slice_pad() -> onnx.ModelProto:
    nodes = [helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["s"]),
             helper.make_node("Pad", ["s", "pads", "cval"], ["y"], mode="constant")]
    inits = [("starts", _i64(1, 0)), ("ends", _i64(3, 4)), ("axes", _i64(0, 1)), ("steps", _i64(1, 2)),
             ("pads", _i64(0, 1, 0, 1)), ("cval", np.array(0.5, np.float32))]
    return _model(nodes, [_vi("x", [4, 4])], [_vi("y", [2, 4])], inits)


def cast_where() -> onnx.ModelProto:
    nodes = [helper.make_node("Greater", ["x", "t"], ["mask"]),
             helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Where", ["mask", "x", "mf"], ["y"])]
    return _model(nodes, [_vi("x", [3, 4])], [_vi("y", [3, 4])], [("t", np.array(0.1, np.float32))])


def layer_norm() -> onnx.ModelProto:
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1, epsilon=1e-5),
             helper.make_node("Erf", ["n"], ["y"])]
    return _model(nodes, [_vi("x", [2, 3, 8])], [_vi("y", [2, 3, 8])],
                  [("g", np.ones(8, np.float32)), ("b", _w(8))])


def unsqueeze_expand() -> onnx.ModelProto:
    nodes = [helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
             helper.make_node("Expand", ["u", "shape"], ["y"])]
    return _model(nodes, [_vi("x", [3])], [_vi("y", [2, 3])], [("axes", _i64(0)), ("shape", _i64(2, 3))])


def constant_node() -> onnx.ModelProto:
    value = numpy_helper.from_array(_w(2, 3, seed=3), "k")
    nodes = [helper.make_node("Constant", [], ["k"], value=value),
             helper.make_node("Mul", ["x", "k"], ["m"]),
             helper.make_node("Clip", ["m", "lo", "hi"], ["y"])]
    inits = [("lo", np.array(-0.5, np.float32)), ("hi", np.array(0.5, np.float32))]
    return _model(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], inits)


def constant_of_shape() -> onnx.ModelProto:
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["z"],
                              value=numpy_helper.from_array(np.array([1.5], np.float32), "v")),
             helper.make_node("Add", ["x", "z"], ["y"])]
    return _model(nodes, [_vi("x", [2, 4])], [_vi("y", [2, 4])], [("shape", _i64(2, 4))])


def shape_arith() -> onnx.ModelProto:
    """A shape computed at run time: Shape -> Slice -> Concat -> Reshape (the dynamic-shape path)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
             helper.make_node("Concat", ["n", "minus1"], ["new_shape"], axis=0),
             helper.make_node("Reshape", ["x", "new_shape"], ["y"])]
    inits = [("zero", _i64(0)), ("one", _i64(1)), ("minus1", _i64(-1))]
    return _model(nodes, [_vi("x", ["N", 3, 4])], [_vi("y", ["N", 12])], inits)


def if_branch() -> onnx.ModelProto:
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [_vi("t", [2, 3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vi("e", [2, 3])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    return _model(nodes, [_vi("c", [], TensorProto.BOOL), _vi("x", [2, 3])], [_vi("y", [2, 3])])


def int_arith() -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["a", "k"], ["s"]),
             helper.make_node("Mul", ["s", "a"], ["p"]),
             helper.make_node("ArgMax", ["p"], ["y"], axis=1, keepdims=0)]
    return _model(nodes, [_vi("a", [3, 4], TensorProto.INT32)], [_vi("y", [3], TensorProto.INT64)],
                  [("k", np.array([1, 2, 3, 4], np.int32))])


def resize_nearest() -> onnx.ModelProto:
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")]
    return _model(nodes, [_vi("x", [1, 2, 3, 3])], [_vi("y", [1, 2, 6, 6])],
                  [("scales", np.array([1, 1, 2, 2], np.float32))], opset=18)


def elementwise_chain() -> onnx.ModelProto:
    nodes = [helper.make_node("Abs", ["x"], ["a"]),
             helper.make_node("Sqrt", ["a"], ["s"]),
             helper.make_node("Pow", ["s", "e"], ["p"]),
             helper.make_node("Div", ["p", "x"], ["d"]),
             helper.make_node("Exp", ["d"], ["y"])]
    return _model(nodes, [_vi("x", [4, 5])], [_vi("y", [4, 5])], [("e", np.array(2.0, np.float32))], opset=13)


def tile_reduce_max() -> onnx.ModelProto:
    nodes = [helper.make_node("Tile", ["x", "reps"], ["t"]),
             helper.make_node("ReduceMax", ["t"], ["y"], axes=[0], keepdims=0)]
    return _model(nodes, [_vi("x", [2, 3])], [_vi("y", [3])], [("reps", _i64(2, 1))])


def half_precision() -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("Mul", ["h", "k"], ["m"]),
             helper.make_node("Cast", ["m"], ["y"], to=TensorProto.FLOAT)]
    return _model(nodes, [_vi("x", [4, 4])], [_vi("y", [4, 4])], [("k", np.full((4,), 0.5, np.float16))])


def conv1d_pool() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3], dilations=[2], pads=[2, 2]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3], strides=[2], ceil_mode=1)]
    return _model(nodes, [_vi("x", [1, 2, 9])], [_vi("y", [1, 3, 4])], [("w", _w(3, 2, 3))])


def gather_scatter_nd() -> onnx.ModelProto:
    nodes = [helper.make_node("GatherND", ["x", "gi"], ["g"]),
             helper.make_node("ScatterND", ["x", "si", "g"], ["y"])]
    inits = [("gi", np.array([[0, 1], [2, 0]], np.int64)), ("si", np.array([[1, 2], [0, 0]], np.int64))]
    return _model(nodes, [_vi("x", [3, 4])], [_vi("y", [3, 4])], inits)


def einsum_reduce() -> onnx.ModelProto:
    nodes = [helper.make_node("Einsum", ["x", "w"], ["e"], equation="bij,jk->bik"),
             helper.make_node("ReduceL2", ["e", "axis"], ["y"], keepdims=0)]
    return _model(nodes, [_vi("x", [2, 3, 4])], [_vi("y", [2, 5])], [("axis", _i64(1)), ("w", _w(4, 5))], opset=18)


def instance_norm_softmax() -> onnx.ModelProto:
    nodes = [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["n"], epsilon=1e-5),
             helper.make_node("Softmax", ["n"], ["y"], axis=1)]
    return _model(nodes, [_vi("x", [2, 3, 5])], [_vi("y", [2, 3, 5])],
                  [("s", np.ones(3, np.float32)), ("b", _w(3))])


def squeeze_where_broadcast() -> onnx.ModelProto:
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
             helper.make_node("Less", ["u", "t"], ["m"]),
             helper.make_node("Where", ["m", "u", "t"], ["w"]),
             helper.make_node("Squeeze", ["w", "ax"], ["y"])]
    return _model(nodes, [_vi("x", [3, 4])], [_vi("y", [3, 4])],
                  [("ax", _i64(1)), ("t", np.array([[[0.0, 0.1, 0.2, 0.3]]], np.float32))])


SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    f.__name__: f for f in (
        conv_relu, conv_bn_pool, depthwise_avgpool, conv_transpose, gemm_sigmoid, matmul_softmax,
        reshape_transpose, split_concat, reduce_ops, gather_indices, slice_pad, cast_where, layer_norm,
        unsqueeze_expand, constant_node, constant_of_shape, shape_arith, if_branch, int_arith, resize_nearest,
        elementwise_chain, tile_reduce_max, half_precision, conv1d_pool, gather_scatter_nd, einsum_reduce,
        instance_norm_softmax, squeeze_where_broadcast,
    )
}
