"""dlc as an onnx Backend; onnx's output comparison; crash and timeout isolation of the worker pool."""

import os
import time

import numpy as np
import onnx
import pytest
from helpers import make_model, rand
from onnx import helper

from dlc.onnx_backend import DlcBackend
from dlc.onnx_backend.cases import Case, all_cases, load_case
from dlc.onnx_backend.compare import mismatch
from dlc.onnx_backend.pool import WorkerPool
from dlc.onnx_backend.run import CaseResult, run_case


def test_prepare_and_run_positional_and_named():
    model = make_model([helper.make_node("Add", ["a", "b"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
                       [("a", [2, 3]), ("b", [2, 3])], [("y", [2, 3])])
    rep = DlcBackend.prepare(model)
    a, b = rand(2, 3, seed=1), rand(2, 3, seed=2)
    out = rep.run([a, b])
    np.testing.assert_allclose(out[0], np.maximum(a + b, 0), rtol=1e-6)
    np.testing.assert_allclose(out.y, rep.run({"a": a, "b": b})[0])
    assert DlcBackend.supports_device("CPU") and not DlcBackend.supports_device("CUDA")


def test_run_node():
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    x = rand(3, 5)
    (y,) = DlcBackend.run_node(node, [x])
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), rtol=1e-5)


def test_compare_follows_onnx_runner():
    ref = np.array([1.0, 0.0], np.float32)
    assert mismatch([np.array([1.0005, 0.0], np.float32)], [ref], 1e-3, 1e-7) is None
    assert "1/2 elements differ" in mismatch([np.array([1.0, 1e-6], np.float32)], [ref], 1e-3, 1e-7)
    assert "dtype float64" in mismatch([ref.astype(np.float64)], [ref], 1e-3, 1e-7)
    assert "shape (1, 2)" in mismatch([ref.reshape(1, 2)], [ref], 1e-3, 1e-7)
    assert mismatch([np.array([np.nan])], [np.array([np.nan])], 1e-3, 1e-7) is None
    assert "expected a sequence" in mismatch([ref], [[ref]], 1e-3, 1e-7)


def test_counts_the_cases_that_ship_with_onnx():
    counts = {}
    for c in all_cases(["simple", "pytorch-converted", "pytorch-operator", "light"]):
        counts[c.category] = counts.get(c.category, 0) + 1
    assert counts == {"simple": 23, "pytorch-converted": 82, "pytorch-operator": 35, "light": 9}


def test_light_case_uses_onnx_dummy_inputs():
    case = next(c for c in all_cases(["light"]) if c.name == "test_squeezenet")
    loaded = load_case(case)
    (inputs, outputs), = loaded.data_sets
    x = inputs[0]
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert x.reshape(-1)[1] == pytest.approx(1 / x.size)


# ---- the pool: cases that crash or hang cost only themselves -------------------------------------------------------

def _misbehaving(case: Case) -> CaseResult:
    """A runner for the pool test: aborts the process, hangs, or runs the case."""
    if case.name == "abort":
        os.abort()
    if case.name == "hang":
        time.sleep(60)
    return run_case(case)


def _case(name: str) -> Case:
    model = make_model([helper.make_node("Neg", ["x"], ["y"])], [("x", [3])], [("y", [3])])
    x = rand(3)
    return Case(name, "node", 1e-3, 1e-7, model_bytes=model.SerializeToString(), data_sets=[([x], [-x])])


def test_pool_survives_crash_and_timeout():
    pool = WorkerPool(jobs=1, timeout=5, runner=_misbehaving)
    results = {r.case: r for r in pool.run([_case("ok1"), _case("abort"), _case("ok2"), _case("hang"),
                                            _case("ok3")])}
    assert results["abort"].status == "crash" and "SIGABRT" in results["abort"].reason
    assert results["hang"].status == "timeout"
    assert [results[n].status for n in ("ok1", "ok2", "ok3")] == ["pass"] * 3


def test_wrong_numbers_are_a_fail_not_an_error():
    case = _case("bad")
    case.data_sets = [(case.data_sets[0][0], [case.data_sets[0][0][0]])]  # expect x instead of -x
    r = run_case(case)
    assert r.status == "fail" and "elements differ" in r.reason


def test_unsupported_op_is_an_error_with_a_reason():
    model = make_model([helper.make_node("FancyOp", ["x"], ["y"], domain="my.ops")], [("x", [2])], [("y", [2])],
                       domains={"my.ops": 1})
    x = rand(2)
    r = run_case(Case("fancy", "node", 1e-3, 1e-7, model_bytes=model.SerializeToString(), data_sets=[([x], [x])]))
    assert r.status == "error" and "UnsupportedOpError" in r.reason and "FancyOp" in r.reason


def test_backend_handles_onnx_model_proto_roundtrip():
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", [2])], [("y", [2])])
    rep = DlcBackend.prepare(onnx.load_from_string(model.SerializeToString()))
    np.testing.assert_array_equal(rep.run([np.array([1.0, 2.0], np.float32)])[0], [1.0, 2.0])
