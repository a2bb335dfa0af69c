"""One-op and few-op models against onnxruntime: max abs error <= 1e-4 (relative 1e-5 on larger values)."""

import numpy as np
import pytest
from helpers import conv_model, make_model, ort_run, rand, single_op_model
from onnx import helper

import dlc

ATOL, RTOL = 1e-4, 1e-5


def check(model, feeds):
    got = dlc.compile(model).run(feeds)
    for (name, g), r in zip(got.items(), ort_run(model, feeds)):
        np.testing.assert_allclose(g, r, atol=ATOL, rtol=RTOL, err_msg=name)


@pytest.mark.parametrize("kw", [
    dict(), dict(kernel=1, pad=0), dict(stride=2), dict(kernel=7, stride=2, pad=3, c=3),
    dict(group=8, c=8, k=8), dict(group=2), dict(bias=False, relu=False), dict(n=2, hw=13),
])
def test_conv(kw):
    model = conv_model(**kw)
    n, c, hw = kw.get("n", 1), kw.get("c", 8), kw.get("hw", 16)
    check(model, {"x": rand(n, c, hw, hw)})


X = ("x", [2, 8, 12, 12])
OPS = {
    "maxpool": (single_op_model("MaxPool", [X], [("y", [2, 8, 6, 6])], kernel_shape=[3, 3], strides=[2, 2],
                                pads=[1, 1, 1, 1]), [2, 8, 12, 12]),
    "avgpool": (single_op_model("AveragePool", [X], [("y", [2, 8, 6, 6])], kernel_shape=[2, 2], strides=[2, 2]),
                [2, 8, 12, 12]),
    "global_avgpool": (single_op_model("GlobalAveragePool", [X], [("y", [2, 8, 1, 1])]), [2, 8, 12, 12]),
    "softmax": (single_op_model("Softmax", [("x", [4, 100])], [("y", [4, 100])], axis=-1), [4, 100]),
    "layernorm": (single_op_model("LayerNormalization", [("x", [2, 5, 64])], [("y", [2, 5, 64])],
                                  [("g", rand(64, seed=1)), ("b", rand(64, seed=2))], axis=-1), [2, 5, 64]),
    "gemm": (single_op_model("Gemm", [("x", [4, 32])], [("y", [4, 16])],
                             [("w", rand(16, 32, seed=1)), ("b", rand(16, seed=2))], transB=1), [4, 32]),
    "matmul_batched": (single_op_model("MatMul", [("x", [3, 5, 32])], [("y", [3, 5, 8])],
                                       [("w", rand(32, 8, seed=1))]), [3, 5, 32]),
    "concat": (single_op_model("Concat", [X], [("y", [2, 16, 12, 12])], [("c", rand(2, 8, 12, 12, seed=3))],
                               axis=1), [2, 8, 12, 12]),
    "resize_nearest": (make_model([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
                                  [X], [("y", [2, 8, 24, 24])],
                                  [("scales", np.array([1, 1, 2, 2], np.float32))]), [2, 8, 12, 12]),
    "resize_linear": (make_model([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")],
                                 [X], [("y", [2, 8, 24, 24])],
                                 [("scales", np.array([1, 1, 2, 2], np.float32))]), [2, 8, 12, 12]),
    "lrn": (single_op_model("LRN", [X], [("y", [2, 8, 12, 12])], size=5, alpha=1e-4, beta=0.75, bias=1.0),
            [2, 8, 12, 12]),
    "transpose": (single_op_model("Transpose", [X], [("y", [12, 8, 12, 2])], perm=[3, 1, 2, 0]), [2, 8, 12, 12]),
    "reduce_mean": (make_model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)], [X],
                               [("y", [2, 8, 1, 1])]), [2, 8, 12, 12]),
    "sigmoid_mul": (make_model([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])],
                               [X], [("y", [2, 8, 12, 12])]), [2, 8, 12, 12]),
    "clip": (make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [X], [("y", [2, 8, 12, 12])],
                        [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))]), [2, 8, 12, 12]),
    "flatten_gemm": (make_model([helper.make_node("Flatten", ["x"], ["f"], axis=1),
                                 helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)],
                                [X], [("y", [2, 10])], [("w", rand(10, 8 * 12 * 12, seed=4, scale=0.05))]),
                     [2, 8, 12, 12]),
    "broadcast_add": (single_op_model("Add", [X], [("y", [2, 8, 12, 12])], [("b", rand(8, 1, 1, seed=5))]),
                      [2, 8, 12, 12]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op(name):
    model, shape = OPS[name]
    check(model, {"x": rand(*shape)})
