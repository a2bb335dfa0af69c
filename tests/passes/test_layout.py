"""layout-nchwc, layout-grouped, fold-layout-transforms: blocked layouts, transforms only at the edges."""

import numpy as np
from helpers import conv_model, kernels, lower, make_model, ort_run, rand, relax_ops
from onnx import helper

import dlc


def _residual_block(c=32):
    """conv-relu-conv + residual add + relu, then maxpool: a ResNet basic block."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["a"]), helper.make_node("Relu", ["a"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    inits = [("w1", rand(c, c, 3, 3, scale=0.1)), ("b1", rand(c, seed=1)), ("w2", rand(c, c, 3, 3, seed=2, scale=0.1)),
             ("b2", rand(c, seed=3))]
    return make_model(nodes, [("x", [1, c, 16, 16])], [("y", [1, c, 8, 8])], inits)


def test_residual_block_runs_blocked_with_transforms_only_at_the_edges():
    model = _residual_block()
    before = relax_ops(lower(model, "graph", disable_passes=("layout-nchwc",), winograd="off"))
    mod = lower(model, "graph", winograd="off")
    after = relax_ops(mod)
    assert "layout_transform" not in before
    assert after["layout_transform"] == 2  # the input, and the output back to NCHW
    assert mod["main"].script().count('data_layout="NCHW16c"') == 2
    x = {"x": rand(1, 32, 16, 16, seed=5)}
    np.testing.assert_allclose(dlc.compile(model, winograd="off").run(x)["y"], ort_run(model, x)[0], atol=1e-4,
                               rtol=1e-5)


def test_conv_bias_relu_and_residual_add_are_one_kernel():
    fused = lower(_residual_block(), "fuse", winograd="off")
    convs = [k for k in kernels(fused) if "conv2d_nchwc" in k]
    assert len(convs) == 2
    second = fused[[k for k in convs if "add_add" in k][0]].script()
    assert "conv2d_nchwc" in second and second.count('T.sblock("T_add') == 2 and 'T.sblock("compute' in second


def test_grouped_conv_is_blocked_per_group():
    model = conv_model(c=48, k=96, group=3, hw=8)
    mod = lower(model, "graph")
    assert 'data_layout="NCHW16c"' in mod["main"].script() and "groups=3" in mod["main"].script()
    x = {"x": rand(1, 48, 8, 8, seed=2)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_back_to_back_transforms_fold():
    # A 3-channel image conv (NCHW1c input) feeding a grouped conv: their transforms meet and compose.
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["y"], group=4)]
    model = make_model(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 32, 8, 8])],
                       [("w1", rand(32, 3, 3, 3)), ("w2", rand(32, 8, 1, 1, seed=1))])
    unfolded = relax_ops(lower(model, "graph", disable_passes=("fold-layout-transforms",)))["layout_transform"]
    folded = relax_ops(lower(model, "graph"))["layout_transform"]
    assert folded < unfolded
    x = {"x": rand(1, 3, 8, 8, seed=3)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)
