"""When TVM fails on a model that got past dlc's validation, the user still gets one line: TVM's C++ chatter
about the failure ("BlockBuilder destroyed with remaining blocks!") does not reach the terminal."""

import gc

import numpy as np
import onnx
import pytest
from helpers import make_model
from onnx import helper

import dlc
from dlc.cli import main
from dlc.errors import CompileError, ModelError


def _reshape_that_does_not_fit():
    # ONNX's Reshape inference does not check the element count; TVM's converter does.
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")]
    return make_model(nodes, [("x", [7, 3, 4])], [("y", [4, 6])], [("shape", np.array([4, 6], np.int64))])


def _mean_over_nothing():
    # A zero-sized axis: TVM divides by the element count inside a pass.
    return make_model([helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0)], [("x", [2, 0])], [("y", [])])


@pytest.mark.parametrize("build, error", [(_reshape_that_does_not_fit, ModelError), (_mean_over_nothing, CompileError)],
                         ids=["converter", "pass"])
def test_tvm_failures_are_one_line(build, error, tmp_path, capfd):
    with pytest.raises(error):
        dlc.compile(build())
    gc.collect()  # the failed builder is destroyed here, at the latest
    assert "BlockBuilder" not in capfd.readouterr().err
    onnx.save(build(), tmp_path / "m.onnx")
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.so"), "-q"]) in (2, 3)
    gc.collect()
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("dlc: error: "), lines
