"""power-to-sqrt: pow by a constant in quarters becomes sqrt and multiplies (LRN's beta = 0.75); the numbers
stay within a few ulp of onnxruntime's pow, special values included."""

import numpy as np
import pytest
from helpers import lower, make_model, ort_run, rand, relax_ops
from onnx import helper

import dlc


def pow_model(exponent: float, shape=(2, 3, 8)):
    nodes = [helper.make_node("Pow", ["x", "e"], ["y"])]
    return make_model(nodes, [("x", list(shape))], [("y", list(shape))], [("e", np.array(exponent, np.float32))])


@pytest.mark.parametrize("exponent, sqrts, multiplies, divides", [
    (0.75, 2, 1, 0), (0.5, 1, 0, 0), (2.0, 0, 1, 0), (1.25, 2, 1, 0), (-0.75, 2, 1, 1), (-2.0, 0, 1, 1)])
def test_quarter_powers_become_sqrt_products(exponent, sqrts, multiplies, divides):
    model = pow_model(exponent)
    assert relax_ops(lower(model, "graph", disable_passes=("power-to-sqrt",))) == {"power": 1}
    ops = relax_ops(lower(model, "graph"))
    assert "power" not in ops
    assert (ops.get("sqrt", 0), ops.get("multiply", 0), ops.get("divide", 0)) == (sqrts, multiplies, divides)
    x = np.abs(rand(2, 3, 8, seed=1)) * 10 + 0.01
    want = ort_run(model, {"x": x})[0]
    got = dlc.compile(model).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=4e-7 * 4, atol=0)  # a few float32 ulp


def test_special_values_match_pow():
    model = pow_model(0.75, shape=(6,))
    x = np.array([0.0, -2.0, np.inf, 1e-30, 1e30, 1.0], np.float32)
    want = ort_run(model, {"x": x})[0]  # 0, nan, inf, tiny, huge, 1
    got = dlc.compile(model).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=2e-6, equal_nan=True)


def test_other_exponents_stay_pow():
    for exponent in (0.3, 5.0):  # not a quarter; beyond MAX_EXPONENT
        assert "power" in relax_ops(lower(pow_model(exponent), "graph"))


def test_lrn_has_no_pow_and_matches_onnxruntime():
    nodes = [helper.make_node("LRN", ["x"], ["y"], size=5, alpha=1e-4, beta=0.75, bias=1.0)]
    model = make_model(nodes, [("x", [1, 32, 9, 9])], [("y", [1, 32, 9, 9])])
    assert "power" not in relax_ops(lower(model, "graph"))
    x = {"x": rand(1, 32, 9, 9, seed=2, scale=20.0)}
    np.testing.assert_allclose(dlc.compile(model).run(x)["y"], ort_run(model, x)[0], rtol=1e-5, atol=1e-6)
