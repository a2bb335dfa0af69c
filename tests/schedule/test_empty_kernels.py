"""A kernel with a loop of extent 0 (a slice of nothing, concatenated) keeps its plain loops ("empty-loop")
instead of every rule failing on it with a division by zero; the numbers still match onnxruntime."""

import numpy as np
from onnx import helper

import dlc
from tests.helpers import make_model, ort_run


def test_empty_slice_in_a_concat():
    inits = [("s", np.array([3], "int64")), ("e", np.array([3], "int64")), ("a", np.array([1], "int64"))]
    model = make_model([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"]),
                        helper.make_node("Concat", ["y", "x"], ["z"], axis=1)],
                       [("x", [2, 4])], [("z", [2, 4])], inits)
    compiled = dlc.compile(model)
    kernels = compiled.metadata["kernels"]
    assert [k["origin"] for k in kernels] == ["empty-loop"] and not any(k["rejected"] for k in kernels), kernels
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_array_equal(compiled.run({"x": x})["z"], ort_run(model, {"x": x})[0])
