"""fusable-layout-transforms: a grouped conv whose NCHW result is only regrouped (reshaped into channel groups
for a per-group slice or a channel shuffle) keeps its blocked output; the transform back to NCHW heads the
injective kernel that gathers the channels, instead of scattering every vector from the conv's registers."""

import numpy as np
from helpers import conv_model, kernels, lower, make_model, ort_run, rand
from onnx import helper

import dlc


def shuffle_unit(c=136, groups=4, hw=8):
    """ShuffleNet's pattern: grouped 1x1 conv -> ReLU -> channel shuffle -> depthwise 3x3."""
    w1 = rand(c, c // groups, 1, 1, seed=1, scale=(2.0 / (c // groups)) ** 0.5)
    w2 = rand(c, 1, 3, 3, seed=2, scale=0.3)
    shape5 = np.array([1, groups, c // groups, hw, hw], dtype="int64")
    shape4 = np.array([1, c, hw, hw], dtype="int64")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1], group=groups),
             helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node("Reshape", ["r", "s5"], ["g"]),
             helper.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["sh"]),
             helper.make_node("Conv", ["sh", "w2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c)]
    return make_model(nodes, [("x", [1, c, hw, hw])], [("y", [1, c, hw, hw])],
                      [("w1", w1), ("w2", w2), ("s5", shape5), ("s4", shape4)])


def test_grouped_conv_before_a_shuffle_writes_blocked_vectors():
    model = shuffle_unit()
    names = kernels(lower(model, "fuse"))
    grouped = [k for k in names if "conv2d_nchwc" in k and "depthwise" not in k]
    assert grouped and all("layout_transform" not in k for k in grouped), names
    # the transform to NCHW, the per-group slice, the ReLU and the shuffle: one injective kernel
    gather = [k for k in names if k.startswith("fused_te_layout_transform") and "transpose" in k]
    assert len(gather) == 1 and "strided_slice" in gather[0] and "relu" in gather[0], names
    x = {"x": rand(1, 136, 8, 8, seed=3)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_grouped_conv_with_an_elementwise_consumer_keeps_the_transform_in_its_epilogue():
    model = conv_model(c=136, k=136, hw=6, kernel=1, pad=0, group=4, bias=False)  # slice, then ReLU
    names = kernels(lower(model, "fuse", disable_passes=("pad-channels",)))  # no slice: ReLU reads NCHW
    assert any("conv2d_nchwc" in k and "layout_transform" in k for k in names), names
