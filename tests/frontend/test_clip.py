"""Clip with constant bounds imports as Relax maximum/minimum by scalars (Relu6 stays in the blocked layout); other Clips keep
TVM's lowering. Numbers against onnxruntime, atol 1e-6 (a clip is exact)."""

import numpy as np
import pytest
from onnx import helper

import dlc
from tests.helpers import conv_model, lower, make_model, ort_run, rand, relax_ops


def _clip_model(lo, hi, opset=17, dtype="float32", runtime_bounds=False):
    inputs = [("x", [2, 3, 5], dtype)]
    inits, names = [], ["x"]
    for n, v in (("lo", lo), ("hi", hi)):
        if v is None:
            names.append("")
        elif runtime_bounds:
            inputs.append((n, [], dtype))
            names.append(n)
        else:
            inits.append((n, np.array(v, dtype)))
            names.append(n)
    while names[-1] == "":
        names.pop()
    node = helper.make_node("Clip", names, ["y"])
    return make_model([node], inputs, [("y", [2, 3, 5], dtype)], inits, opset=opset)


@pytest.mark.parametrize("lo,hi,ops", [(0.0, 6.0, {"maximum": 1, "minimum": 1}), (-0.5, None, {"maximum": 1}),
                                       (None, 0.25, {"minimum": 1}), (1.0, -1.0, {"maximum": 1, "minimum": 1}),
                                       (np.nan, 0.5, {"minimum": 1})])
def test_constant_bounds_become_scalar_max_min(lo, hi, ops):
    model = _clip_model(lo, hi)
    assert relax_ops(lower(model, "graph")) == ops
    x = rand(2, 3, 5, scale=3.0)
    np.testing.assert_allclose(dlc.compile(model).run({"x": x})["y"], ort_run(model, {"x": x})[0], atol=1e-6)


def test_opset6_attributes_and_runtime_bounds():
    node = helper.make_node("Clip", ["x"], ["y"], min=-1.0, max=2.0)
    v6 = make_model([node], [("x", [2, 3, 5])], [("y", [2, 3, 5])], opset=6)
    assert relax_ops(lower(v6, "graph")) == {"maximum": 1, "minimum": 1}
    dynamic = _clip_model(-1.0, 1.0, runtime_bounds=True)
    assert "maximum" not in relax_ops(lower(dynamic, "graph"))  # TVM's converter: TE kernels (call_tir)
    x = rand(2, 3, 5, scale=3.0)
    feeds = {"x": x, "lo": np.array(-1.0, "float32"), "hi": np.array(1.0, "float32")}
    np.testing.assert_allclose(dlc.compile(dynamic).run(feeds)["y"], ort_run(dynamic, feeds)[0], atol=1e-6)
    np.testing.assert_allclose(dlc.compile(v6).run({"x": x})["y"], ort_run(v6, {"x": x})[0], atol=1e-6)


def test_integer_clip_keeps_tvm_lowering():
    model = _clip_model(-3, 4, dtype="int32")
    x = np.arange(-15, 15, dtype="int32").reshape(2, 3, 5)
    np.testing.assert_array_equal(dlc.compile(model).run({"x": x})["y"], ort_run(model, {"x": x})[0])


def test_relu6_after_conv_stays_blocked():
    """conv -> Clip(0, 6) -> conv: no layout transform between the convs (only at the graph's edges)."""
    first = conv_model(c=16, k=16, relu=False)
    nodes = list(first.graph.node) + [
        helper.make_node("Clip", ["y", "zero", "six"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["z"], kernel_shape=[1, 1])]
    inits = [(t.name, __import__("onnx").numpy_helper.to_array(t)) for t in first.graph.initializer]
    inits += [("zero", np.array(0.0, "float32")), ("six", np.array(6.0, "float32")),
              ("w2", rand(16, 16, 1, 1, seed=3, scale=0.25))]
    model = make_model(nodes, [("x", [1, 16, 16, 16])], [("z", [1, 16, 16, 16])], inits)
    assert relax_ops(lower(model, "graph")).get("layout_transform", 0) == 2  # in and out only
    x = rand(1, 16, 16, 16, scale=2.0)
    np.testing.assert_allclose(dlc.compile(model).run({"x": x})["z"], ort_run(model, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)
