"""ONNX -> Relax: unsupported ops listed with node names, input shapes from the model or overrides."""

import pytest
from helpers import conv_bn_relu_model, make_model
from onnx import helper

from dlc.errors import InputError, ModelError, UnsupportedOpError
from dlc.frontend import import_onnx, load_model


def test_every_unsupported_op_is_listed_with_its_nodes():
    nodes = [helper.make_node("FancyOp", ["x"], ["a"], name="fancy_1", domain="my.ops"),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("FancyOp", ["b"], ["c"], name="fancy_2", domain="my.ops"),
             helper.make_node("OtherOp", ["c"], ["y"], name="other", domain="my.ops")]
    model = make_model(nodes, [("x", [2, 3])], [("y", [2, 3])], domains={"my.ops": 1})
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(load_model(model))
    assert e.value.ops == {"FancyOp": ["fancy_1", "fancy_2"], "OtherOp": ["other"]}
    assert "FancyOp (nodes 'fancy_1', 'fancy_2'); OtherOp (nodes 'other')" in str(e.value)


def test_symbolic_batch_is_kept():
    imported = import_onnx(load_model(conv_bn_relu_model(n="N")))
    assert imported.signature.inputs[0].shape == ("N", 3, 16, 16)
    assert imported.signature.outputs[0].shape == ("N", 8, 16, 16)


def test_input_shape_override():
    imported = import_onnx(load_model(conv_bn_relu_model(n="N")), {"x": (4, 3, 16, 16)})
    assert imported.signature.inputs[0].shape == (4, 3, 16, 16)
    assert imported.signature.outputs[0].shape == (4, 8, 16, 16)


def test_override_of_unknown_input():
    with pytest.raises(InputError, match=r"names 'data', but the model's inputs are \['x'\]"):
        import_onnx(load_model(conv_bn_relu_model()), {"data": (1, 3, 16, 16)})


def test_override_with_wrong_rank():
    with pytest.raises(InputError, match="rank 2 but the model declares 4 dims"):
        import_onnx(load_model(conv_bn_relu_model()), {"x": (1, 3)})


def test_converter_failure_names_the_node():
    # Reshape to a shape that does not hold the element count: TVM's converter rejects it.
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")]
    import numpy as np

    model = make_model(nodes, [("x", [2, 3])], [("y", [4, 4])], [("shape", np.array([4, 4], np.int64))])
    with pytest.raises(ModelError, match="node 'bad_reshape' \\(Reshape"):
        import_onnx(load_model(model))
