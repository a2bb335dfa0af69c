"""Shapes no machine can hold, and models TVM would choke on, are refused by the frontend with one line
naming the tensor — before anything is allocated and before TVM sees the model."""

import re
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from helpers import make_model, single_op_model
from onnx import TensorProto, helper, numpy_helper

import dlc
from dlc.errors import ModelError
from dlc.frontend import import_onnx, limits, load_model
from dlc.frontend.validate import ENUM_ATTRIBUTES, validate_for_import
from dlc.signature import TensorSpec

HUGE = 2**40


def _import(model, shapes=None):
    return import_onnx(load_model(model), shapes)


def test_memory_budget_is_physical_memory_or_less():
    import os

    phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < limits.memory_budget() <= phys


def test_memory_budget_follows_the_address_space_limit():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from dlc.frontend.limits import memory_budget; print(memory_budget())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == 3 << 30


@pytest.mark.parametrize("dims, text", [((HUGE,), "4.0 TB"), ((2**31, 2**31), "16.0 EB"), ((2**62, 2**62, 4), "2^")])
def test_declared_input_shape_too_large(dims, text):
    model = single_op_model("Relu", [("x", list(dims))], [("y", list(dims))])
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=rf"value 'x' of shape .* needs {re.escape(text)}.*more than this machine"):
        _import(model)
    assert time.perf_counter() - t0 < 5  # refused up front, not after trying


def test_input_shape_override_too_large():
    model = single_op_model("Relu", [("x", ["N", 4])], [("y", ["N", 4])])
    with pytest.raises(ModelError, match=r"value 'x' of shape \(1099511627776, 4\) needs 16.0 TB"):
        _import(model, {"x": (HUGE, 4)})
    assert _import(model, {"x": (8, 4)}).signature.inputs[0].shape == (8, 4)


def test_intermediate_too_large_found_by_shape_inference():
    """ConstantOfShape fed an initializer: the 2^40-element tensor exists only after constant folding."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0)]
    model = make_model(nodes, [], [("y", [])], [("shape", np.array([2**20, 2**20], np.int64))])
    with pytest.raises(ModelError, match=r"value 'big' of shape \(1048576, 1048576\) needs 4.0 TB"):
        _import(model)


def test_intermediate_too_large_through_expand():
    nodes = [helper.make_node("Expand", ["x", "shape"], ["big"]), helper.make_node("Relu", ["big"], ["y"])]
    model = make_model(nodes, [("x", [1, 1])], [("y", ["a", "b"])], [("shape", np.array([HUGE, 8], np.int64))])
    with pytest.raises(ModelError, match=r"value 'big' of shape \(1099511627776, 8\)"):
        _import(model)


def test_initializer_declaring_a_huge_shape_without_data():
    t = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[HUGE])  # no data at all
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [1])], [("y", [HUGE])], check=False)
    model.graph.initializer.append(t)
    with pytest.raises(ModelError, match=r"tensor 'w' of shape \(1099511627776,\) needs 4.0 TB"):
        _import(model)


def test_initializers_together_too_large(monkeypatch):
    w = np.ones((256, 256), np.float32)  # 256 KB each
    nodes = [helper.make_node("Add", ["x", "a"], ["s"]), helper.make_node("Add", ["s", "b"], ["y"])]
    model = make_model(nodes, [("x", [256, 256])], [("y", [256, 256])], [("a", w), ("b", w)])
    monkeypatch.setattr(limits, "memory_budget", lambda: 300 * 1024)
    with pytest.raises(ModelError, match="the model's tensors together needs 512.0 KB"):
        _import(model)
    monkeypatch.setattr(limits, "memory_budget", lambda: 2**30)
    _import(model)


def test_a_compile_of_a_huge_model_fails_fast_in_the_cli(tmp_path, capsys):
    from dlc.cli import main

    model = single_op_model("Relu", [("x", [HUGE, HUGE])], [("y", [HUGE, HUGE])])
    onnx.save(model, tmp_path / "huge.onnx")
    assert main(["compile", str(tmp_path / "huge.onnx"), "-o", str(tmp_path / "h.so"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "more than this machine can allocate" in err[0]
    assert not (tmp_path / "h.so").exists()


# ---- tensors whose data does not match their type -----------------------------------------------------------
def test_initializer_data_shorter_than_its_shape():
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [2, 3])], [("y", [2, 3])], check=False)
    t = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    t.dims[:] = [4, 3]
    model.graph.initializer.append(t)
    with pytest.raises(ModelError, match=r"tensor 'w' of shape \(4, 3\) and type FLOAT needs 48 bytes of data but "
                                         r"holds 24"):
        import_onnx(load_model(model, check=False))


def test_typed_field_count_mismatch():
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [3])], [("y", [3])], check=False)
    t = onnx.TensorProto(name="w", data_type=TensorProto.INT64, dims=[3], int64_data=[1, 2])
    model.graph.initializer.append(t)
    with pytest.raises(ModelError, match=r"tensor 'w' of shape \(3,\) and type INT64 needs 3 values of data but holds 2"):
        import_onnx(load_model(model, check=False))


@pytest.mark.parametrize("elem", [TensorProto.STRING, TensorProto.COMPLEX64, TensorProto.COMPLEX128])
def test_element_types_dlc_cannot_compile(elem):
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", [2])], [("y", [2])])
    model.graph.input[0].type.tensor_type.elem_type = elem
    model.graph.output[0].type.tensor_type.elem_type = elem
    name = TensorProto.DataType.Name(elem)
    with pytest.raises(ModelError, match=f"value 'x' has element type {name}, which dlc cannot compile"):
        _import(model)


def test_cast_to_a_type_dlc_cannot_compile():
    model = make_model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.STRING),
                        helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)], [("x", [2])], [("y", [2])])
    with pytest.raises(ModelError, match="value 'c' has element type STRING"):
        _import(model)


def test_float8_is_left_to_tvm():
    """TVM has float8 types; whether an op supports them is the importer's call, not the validator's."""
    model = make_model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT8E4M3FN),
                        helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)], [("x", [2])], [("y", [2])],
                       opset=21)
    validate_for_import(load_model(model), [TensorSpec("x", (2,), "float32")])


# ---- what onnx's checker lets through and TVM fails on, deep in a pass ----------------------------------------
def test_shape_inference_names_the_node():
    nodes = [helper.make_node("Concat", ["a", "b"], ["y"], axis=0, name="cat")]
    model = make_model(nodes, [("a", [2, 3]), ("b", [2, 4])], [("y", [4, 3])], check=False)
    with pytest.raises(ModelError, match=r"shape inference: \(op_type:Concat, node name: cat\)"):
        _import(model)


def test_declared_output_and_intermediate_shapes_are_only_hints():
    """Exporters write wrong value_info now and then; ORT and dlc compute shapes themselves."""
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["y"])],
                       [("x", [2, 3])], [("y", [7, 7])])
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [5]))
    assert _import(model).signature.outputs[0].shape == (2, 3)


@pytest.mark.parametrize("op, attr, value", [("Resize", "mode", "wrap"), ("Pad", "mode", "VALID"),
                                             ("Conv", "auto_pad", "SAME")])
def test_mode_attributes_must_be_spec_values(op, attr, value):
    allowed = ENUM_ATTRIBUTES[(op, attr)]
    assert value not in allowed
    inputs = {"Resize": ["x", "", "scales"], "Pad": ["x", "pads"], "Conv": ["x", "w"]}[op]
    inits = {"Resize": [("scales", np.array([1, 1, 2, 2], np.float32))], "Pad": [("pads", np.zeros(8, np.int64))],
             "Conv": [("w", np.ones((2, 2, 1, 1), np.float32))]}[op]
    node = helper.make_node(op, inputs, ["y"], name="n1", **{attr: value})
    model = make_model([node], [("x", [1, 2, 4, 4])], [("y", ["a", "b", "c", "d"])], inits, opset=18)
    with pytest.raises(ModelError, match=rf"node 'n1' \({op}\): {attr} '{value}' is not one of"):
        _import(model)


def test_a_valid_mode_still_compiles():
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    model = make_model([node], [("x", [1, 4])], [("y", [1, 6])], [("pads", np.array([0, 1, 0, 1], np.int64))])
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_array_equal(dlc.compile(model).run({"x": x})["y"], np.pad(x, ((0, 0), (1, 1)), "reflect"))


def _i64(*v):
    return np.array(v, np.int64)


# Small models whose one intermediate is astronomically large: shape inference with data propagation sees it.
ADVERSARIAL = {
    "Range": ([helper.make_node("Range", ["s", "l", "d"], ["r"]), helper.make_node("Cast", ["r"], ["big"], to=1)],
              [], [("s", np.array(0, np.int64)), ("l", np.array(HUGE, np.int64)), ("d", np.array(1, np.int64))]),
    "Tile": ([helper.make_node("Tile", ["x", "reps"], ["big"])], [("x", [2, 2])], [("reps", _i64(2**20, 2**20))]),
    "Resize": ([helper.make_node("Resize", ["x", "", "sc"], ["big"], mode="nearest")], [("x", [1, 1, 4, 4])],
               [("sc", np.array([1, 1, 1e6, 1e6], np.float32))]),
    "Pad": ([helper.make_node("Pad", ["x", "pads"], ["big"])], [("x", [2, 2])], [("pads", _i64(0, 0, 2**30, 2**30))]),
    "OneHot": ([helper.make_node("OneHot", ["i", "depth", "vals"], ["big"])], [("i", [4], "int64")],
               [("depth", np.array(HUGE, np.int64)), ("vals", np.array([0, 1], np.float32))]),
    "Concat->ConstantOfShape": ([helper.make_node("Concat", ["a", "b"], ["s"], axis=0),
                                 helper.make_node("ConstantOfShape", ["s"], ["big"])], [],
                                [("a", _i64(2**20)), ("b", _i64(2**20))]),
    "MatMul": ([helper.make_node("MatMul", ["x", "w"], ["big"])], [("x", [2**20, 1])],
               [("w", np.ones((1, 2**20), np.float32))]),
    "Einsum": ([helper.make_node("Einsum", ["x", "x"], ["big"], equation="i,j->ij")], [("x", [2**20])], []),
}


@pytest.mark.parametrize("op", sorted(ADVERSARIAL))
def test_huge_intermediates_are_refused_before_tvm(op):
    nodes, inputs, inits = ADVERSARIAL[op]
    model = make_model(nodes, inputs, [("big", [f"d{i}" for i in range(4 if op == "Resize" else 1 if op == "Range" else 2)])],
                       inits, opset=18, check=False)
    with pytest.raises(ModelError, match=r"value '(big|r)' of shape .* more than this machine can allocate"):
        _import(model)


def test_attributes_that_make_a_negative_shape():
    node = helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2**20, 2**20])
    model = make_model([node], [("x", [1, 1, 4, 4])], [("y", ["a", "b", "c", "d"])],
                       [("w", np.ones((1, 1, 3, 3), np.float32))])
    with pytest.raises(ModelError, match=r"value 'y' would have shape \(1, 1, -2097148, -2097148\)"):
        _import(model)


# Shape tensors whose *values* explode: onnx's data propagation would compute every one of them, in-process,
# for hours; dlc runs it in a child bounded to INFERENCE_MEMORY and says what happened.
EXPLOSIVE = 2**30
DATA_BOMBS = {
    "Tile": ([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Tile", ["s", "reps"], ["t"]),
              helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT)],
             [("x", [3])], [("reps", _i64(EXPLOSIVE))]),
    "Range": ([helper.make_node("Range", ["a", "l", "d"], ["t"]), helper.make_node("Add", ["t", "t"], ["s"]),
               helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT)],
              [], [("a", np.array(0, np.int64)), ("l", np.array(EXPLOSIVE, np.int64)), ("d", np.array(1, np.int64))]),
    "ConstantOfShape": ([helper.make_node("ConstantOfShape", ["shp"], ["t"], value=helper.make_tensor("v", 7, [1], [1])),
                         helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT)], [], [("shp", _i64(EXPLOSIVE))]),
}


@pytest.mark.parametrize("op", sorted(DATA_BOMBS))
def test_exploding_shape_computations_are_stopped(op):
    nodes, inputs, inits = DATA_BOMBS[op]
    model = make_model(nodes, inputs, [("y", ["n"])], inits, opset=18, check=False)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"shape inference with data propagation took more than 512.0 MB: a "
                                         r"computed shape in this model is absurdly large"):
        _import(model)
    assert time.perf_counter() - t0 < 60


def test_sandbox_reports_how_the_child_ended():
    import os
    import signal

    from dlc.frontend.sandbox import run_bounded

    def steps(emit):
        emit(b"first")
        emit(b"second")

    assert run_bounded(steps, seconds=10, extra_memory=1 << 28) == ([b"first", b"second"], None)
    results, failure = run_bounded(lambda emit: (emit(b"a"), 1 / 0), seconds=10, extra_memory=1 << 28)
    assert results == [b"a"] and failure.kind == "error" and "division by zero" in failure.detail
    _, failure = run_bounded(lambda emit: bytearray(1 << 30), seconds=10, extra_memory=1 << 28)
    assert failure.kind == "memory"
    _, failure = run_bounded(lambda emit: os.kill(os.getpid(), signal.SIGSEGV), seconds=10, extra_memory=1 << 28)
    assert failure.kind == "crash" and failure.detail == "SIGSEGV"
    t0 = time.perf_counter()
    _, failure = run_bounded(lambda emit: time.sleep(60), seconds=1, extra_memory=1 << 28)
    assert failure.kind == "timeout" and time.perf_counter() - t0 < 10
