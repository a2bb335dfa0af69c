"""dlc's llvm rules decline what is not theirs ("not mine") instead of raising: no rule is rejected (a rule that
raises is a bug, logged as a warning) on the edge cases the fuzzer found; numbers against onnxruntime."""

import numpy as np
import pytest
from onnx import helper

import dlc
from tests.helpers import conv_model, make_model, ort_run, rand


@pytest.mark.parametrize("op,attrs,out_shape,dtype", [
    ("ArgMax", {"axis": 0, "keepdims": 0}, [], "int64"),  # a reduction to one scalar
    ("ReduceSum", {"keepdims": 0}, [], "float32"),
])
def test_reduction_to_a_scalar(op, attrs, out_shape, dtype):
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", [37])], [("y", out_shape, dtype)])
    compiled = dlc.compile(model)
    assert not any(k["rejected"] for k in compiled.metadata["kernels"]), compiled.metadata["kernels"]
    x = rand(37)
    np.testing.assert_allclose(compiled.run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-5)


def test_conv_with_symbolic_height_is_scheduled():
    w = rand(16, 16, 3, 3, seed=1, scale=0.1)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])],
                       [("x", [1, 16, "h", 8])], [("y", [1, 16, "h", 8])], [("w", w)])
    compiled = dlc.compile(model)
    conv = [k for k in compiled.metadata["kernels"] if "conv2d" in k["name"]]
    assert conv and not any(k["rejected"] for k in conv), conv
    x = rand(1, 16, 12, 8)
    np.testing.assert_allclose(compiled.run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", [
    dict(c=256, k=32, hw=14, kernel=1, pad=0, stride=2),  # strided 1x1: data_stride + chunked reduction
    dict(c=64, k=32, hw=10),  # 3x3, chunked, accumulators for all rows
    dict(c=64, k=32, hw=40, bias=False, relu=False),  # 3x3, chunked, one row per task; conv writes the output
    dict(c=512, k=32, hw=7),  # weights past half of L2: taps read in memory order
])
def test_conv_with_chunked_reduction(kw):
    model = conv_model(**kw)
    x = rand(1, kw["c"], kw["hw"], kw["hw"])
    compiled = dlc.compile(model, winograd="off")
    assert [k["origin"] for k in compiled.metadata["kernels"] if "conv2d" in k["blocks"]] == ["hand:conv2d_nchwc"]
    np.testing.assert_allclose(compiled.run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def _scheduled(model, kernel_part: str) -> str:
    from tests.helpers import lower

    mod = lower(model, "schedule")
    names = [gv.name_hint for gv in mod.get_global_vars() if kernel_part in gv.name_hint]
    assert len(names) == 1, names
    return mod[names[0]].script()


@pytest.mark.parametrize("op,shape,attrs", [
    ("Softmax", [2, 8, 64], {"axis": -1}),
    ("LayerNormalization", [2, 8, 64], {"axis": -1}),
])
def test_row_reductions_run_in_vector_lanes(op, shape, attrs):
    inputs = ["x"] + (["g", "b"] if op == "LayerNormalization" else [])
    inits = [("g", rand(64, seed=1)), ("b", rand(64, seed=2))] if op == "LayerNormalization" else []
    model = make_model([helper.make_node(op, inputs, ["y"], **attrs)], [("x", shape)], [("y", shape)], inits,
                       opset=17)
    script = _scheduled(model, "softmax" if op == "Softmax" else "layer_norm")
    # each row's max/sum (or moments) is 16 partial results updated one vector op per step (rfactor)
    assert script.count("_rf_update") == 2 and "T.vectorized(T.int64(16))" in script
    x = rand(*shape, seed=3)
    np.testing.assert_allclose(dlc.compile(model).run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-5,
                               atol=1e-5)


def test_matmul_packs_each_panel_of_b_once():
    w = rand(96, 256, seed=1, scale=0.1)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [1, 64, 96])], [("y", [1, 64, 256])],
                       [("w", w)])
    script = _scheduled(model, "matmul")
    assert '_global"' in script  # the cache_read copy of B's panel, inside the parallel loop over N tiles
    x = rand(1, 64, 96, seed=2)
    np.testing.assert_allclose(dlc.compile(model).run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_pads_per_band_of_rows(stride):
    model = conv_model(c=32, k=32, hw=20, group=32, stride=stride)
    script = _scheduled(model, "depthwise")
    # one parallel loop: the padding is computed inside it for each band, not as a pass over the whole image
    assert script.count("T.parallel(") == 1 and 'T.sblock("data_pad")' in script
    x = rand(1, 32, 20, 20, seed=4)
    np.testing.assert_allclose(dlc.compile(model).run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-4,
                               atol=1e-4)


def test_layout_transform_behind_a_shuffle_writes_in_output_order():
    """NCHW16c -> per-group slice -> channel shuffle -> NCHW8c: the injective rule iterates over the output
    (whole 8-lane vectors stored, the shuffle gathered), not over the transform's input (strided both ways);
    a plain NCHW -> NCHW2c transform, contiguous in its own order, keeps that order."""
    import tvm.sym
    from tvm import s_tir

    from tests.helpers import lower
    from tests.passes.test_regroup_layout import shuffle_unit

    model = shuffle_unit(hw=28)
    mod = lower(model, "schedule")
    (name,) = [gv.name_hint for gv, _ in mod.functions_items() if "transpose" in gv.name_hint]
    assert "T.vectorized(T.int64(8))" in mod[name].script()
    sch = s_tir.Schedule(mod[name])
    (out,) = [b for b in sch.get_child_blocks(sch.get_sblock("root"))]
    block = sch.get(out)
    analyzer = tvm.sym.Analyzer()
    for iv in block.iter_vars:
        analyzer.bind(iv.var, iv.dom)
    written = [r.min for r in block.writes[0].region]
    # each output index is one block iterator, in order: the innermost (vectorized) one walks the 8 lanes
    assert all(analyzer.can_prove_equal(i, iv.var) for i, iv in zip(written, block.iter_vars)), written
    x = {"x": rand(1, 136, 28, 28, seed=4)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_grouped_conv_tiles_stay_within_a_group():
    """A grouped conv's register tile covers channel blocks of one group only (each broadcast input scalar
    feeds the whole tile), the most FMAs per load: ShuffleNet's 5 blocks per group on 14x14 -> 2 x 5."""
    import importlib

    from dlc.schedule.registry import load_builtin_rules

    # the rule module as the registry loads it (origin "hand"); importing schedules/ by another name would
    # register its rule again, as a user rule, for the rest of the process
    load_builtin_rules("llvm")
    tile_sizes = importlib.import_module("dlc._builtin.schedules.llvm.conv2d_nchwc").tile_sizes

    assert tile_sizes(14, 20, 5) == (2, 5)  # 7 x 2 would straddle groups
    assert tile_sizes(28, 12, 3) == (7, 3) and tile_sizes(7, 36, 9) == (7, 3)
    assert tile_sizes(14, 20) == (7, 2)  # ungrouped: unchanged
    model = conv_model(c=272, k=320, hw=14, kernel=1, pad=0, group=4)  # 80 = 5 x 16 filters per group
    x = {"x": rand(1, 272, 14, 14, seed=5)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], atol=1e-4, rtol=1e-5)


def test_depthwise_writing_a_smaller_channel_block_stores_whole_vectors():
    """A depthwise conv (16 channels per vector) whose result feeds a grouped conv reading NCHW4c (68 channels
    per group) writes four 4-float vectors per result, not 16 single floats."""
    c, groups = 272, 4
    w1, w2 = rand(c, 1, 3, 3, seed=1, scale=0.3), rand(c, c // groups, 1, 1, seed=2, scale=0.1)
    model = make_model([helper.make_node("Conv", ["x", "w1"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c),
                        helper.make_node("Conv", ["d", "w2"], ["y"], kernel_shape=[1, 1], group=groups)],
                       [("x", [1, c, 14, 14])], [("y", [1, c, 14, 14])], [("w1", w1), ("w2", w2)])
    script = _scheduled(model, "depthwise")
    assert "T.Buffer((T.int64(1), T.int64(68), T.int64(14), T.int64(14), T.int64(4))" in script  # NCHW4c out
    assert "T.vectorized(T.int64(4))" in script and "T.vectorized(T.int64(16))" in script
    x = rand(1, c, 14, 14, seed=4)
    np.testing.assert_allclose(dlc.compile(model).run({"x": x})["y"], ort_run(model, {"x": x})[0], rtol=1e-4,
                               atol=1e-4)
