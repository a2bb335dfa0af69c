"""fold-affine: BN / Mul / Add by per-channel constants after a conv or matmul fold into its weights."""

import numpy as np
from helpers import conv_bn_relu_model, lower, make_model, ort_run, rand, relax_ops
from onnx import helper

import dlc


def _conv_bn_scale_shift():
    """conv -> BatchNormalization -> Mul(c) -> Add(c) -> Relu, as DenseNet/Inception-v2 write it."""
    k = 16
    rng = np.random.default_rng(0)
    inits = [("w", rand(k, 8, 3, 3)), ("s", rng.uniform(0.5, 1.5, k).astype("float32")), ("bb", rand(k, seed=2)),
             ("m", rand(k, seed=3)), ("v", rng.uniform(0.5, 1.5, k).astype("float32")),
             ("mul", rand(k, 1, 1, seed=4)), ("add", rand(k, 1, 1, seed=5))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"]),
             helper.make_node("Mul", ["bn", "mul"], ["sc"]), helper.make_node("Add", ["sc", "add"], ["sh"]),
             helper.make_node("Relu", ["sh"], ["y"])]
    return make_model(nodes, [("x", [1, 8, 12, 12])], [("y", [1, k, 12, 12])], inits)


def test_batchnorm_scale_and_shift_fold_into_the_conv():
    model = _conv_bn_scale_shift()
    before = relax_ops(lower(model, "graph", disable_passes=("fold-affine",)))
    after = relax_ops(lower(model, "graph"))
    assert before["multiply"] >= 2 and before["subtract"] == 1 and before["divide"] == 1
    assert after == {"layout_transform": 2, "nn.conv2d": 1, "add": 1, "nn.relu": 1}
    x = {"x": rand(1, 8, 12, 12, seed=9)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_gemm_bias_and_scale_fold_into_the_matmul():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Mul", ["g", "s"], ["y"])]
    model = make_model(nodes, [("x", [2, 32])], [("y", [2, 8])],
                       [("w", rand(8, 32)), ("b", rand(8, seed=1)), ("s", rand(8, seed=2))])
    assert relax_ops(lower(model, "graph")) == {"matmul": 1, "add": 1}
    x = {"x": rand(2, 32, seed=3)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_a_value_with_two_users_is_not_folded():
    # The conv output feeds both the scale and a second branch: folding would compute the conv twice.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Mul", ["c", "s"], ["a"]),
             helper.make_node("Add", ["a", "c"], ["y"])]
    model = make_model(nodes, [("x", [1, 4, 6, 6])], [("y", [1, 8, 6, 6])], [("w", rand(8, 4, 1, 1)), ("s", rand(8, 1, 1))])
    ops = relax_ops(lower(model, "graph"))
    assert ops["nn.conv2d"] == 1 and ops["multiply"] == 1
    x = {"x": rand(1, 4, 6, 6, seed=1)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_conv_bn_relu_is_one_kernel():
    kernels = [k["name"] for k in dlc.compile(conv_bn_relu_model()).kernels]
    assert [k for k in kernels if "conv" in k] == ["fused_conv2d_nchwc_add_relu_te_layout_transform1"]
