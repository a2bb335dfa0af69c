"""sum-to-add and remove-dropout: ONNX Sum becomes adds, inference Dropout disappears."""

import numpy as np
from helpers import lower, make_model, ort_run, rand, relax_ops
from onnx import helper

import dlc


def test_sum_of_three_becomes_two_adds():
    nodes = [helper.make_node("Sum", ["a", "b", "c"], ["y"])]
    model = make_model(nodes, [("a", [2, 8]), ("b", [2, 8]), ("c", [2, 8])], [("y", [2, 8])])
    assert "stack" in relax_ops(lower(model, "graph", disable_passes=("sum-to-add", "layout-nchwc")))
    assert relax_ops(lower(model, "graph")) == {"add": 2}
    feeds = {n: rand(2, 8, seed=i) for i, n in enumerate("abc")}
    np.testing.assert_allclose(dlc.compile(model).run(feeds)["y"], ort_run(model, feeds)[0], atol=1e-6)


def test_dropout_is_removed():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Dropout", ["r"], ["d"]),
             helper.make_node("Neg", ["d"], ["y"])]
    model = make_model(nodes, [("x", [3, 5])], [("y", [3, 5])], opset=12)
    assert "nn.dropout" in relax_ops(lower(model, "graph", disable_passes=("remove-dropout", "layout-nchwc")))
    assert relax_ops(lower(model, "graph")) == {"nn.relu": 1, "negative": 1}
    x = {"x": rand(3, 5)}
    np.testing.assert_array_equal(dlc.compile(model).run(x)["y"], ort_run(model, x)[0])


def test_layout_inference_holes_fall_back_to_nchw(caplog):
    # TVM's ConvertLayout cannot carry a layout through stack(); with sum-to-add off, layout-nchwc must give
    # up on the model (a warning), not fail the compile.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sum", ["c", "c"], ["y"])]
    model = make_model(nodes, [("x", [1, 16, 6, 6])], [("y", [1, 16, 6, 6])], [("w", rand(16, 16, 3, 3))])
    x = {"x": rand(1, 16, 6, 6, seed=4)}
    with caplog.at_level("WARNING", logger="dlc.passes"):
        got = dlc.compile(model, disable_passes=("sum-to-add",), winograd="off").run(x)["y"]
    assert "left the model in NCHW" in caplog.text
    np.testing.assert_allclose(got, ort_run(model, x)[0], atol=1e-4, rtol=1e-5)
