"""reuse-layout-copies: a tensor that feeds a grouped conv (through a transform to NCHW{b}c) and an
elementwise op (a residual add) is written blocked by the kernel that computes it; the add reads the blocked
copy back. ShuffleNet's units, in small."""

from collections import Counter

import numpy as np
import tvm
from helpers import lower, make_model, ort_run, rand
from onnx import helper
from tvm import relax

import dlc


def residual_unit(c=136, groups=4, hw=8):
    """Grouped 1x1 conv -> ReLU -> r; r -> grouped 1x1 conv, + r, ReLU (r: the residual and the next input)."""
    w1 = rand(c, c // groups, 1, 1, seed=1, scale=(2.0 / (c // groups)) ** 0.5)
    w2 = rand(c, c // groups, 1, 1, seed=2, scale=(2.0 / (c // groups)) ** 0.5)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[1, 1], group=groups),
             helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["c2"], kernel_shape=[1, 1], group=groups),
             helper.make_node("Add", ["c2", "r"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    return make_model(nodes, [("x", [1, c, hw, hw])], [("y", [1, c, hw, hw])], [("w1", w1), ("w2", w2)])


def _kernel_calls(mod) -> Counter:
    calls = Counter()

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op) and e.op.name == "relax.call_tir":
            calls[e.args[0].name_hint] += 1

    relax.analysis.post_order_visit(mod["main"], visit)
    return calls


def _standalone_transforms(calls: Counter) -> int:
    return sum(n for k, n in calls.items() if k.startswith("te_layout_transform"))


def test_the_residual_reads_the_blocked_copy_and_its_transform_is_no_kernel_of_its_own():
    model = residual_unit()
    before = _kernel_calls(lower(model, "fuse", disable_passes=("reuse-layout-copies",)))
    after = _kernel_calls(lower(model, "fuse"))
    # x -> NCHW2c (an input: nothing computes it) and r -> NCHW2c were passes over memory of their own ...
    assert _standalone_transforms(before) == 2, before
    # ... now r's kernel (the first ReLU) writes r blocked, and the residual add reads it back from there
    assert _standalone_transforms(after) == 1 and sum(after.values()) == sum(before.values()) - 1, after
    assert any(k.endswith("_relu_te_layout_transform") for k in after), after
    x = {"x": rand(1, 136, 8, 8, seed=3)}
    expected = ort_run(model, x)[0]
    for disabled in ((), ("reuse-layout-copies",)):
        got = dlc.compile(model, disable_passes=disabled).run(x)["y"]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)
