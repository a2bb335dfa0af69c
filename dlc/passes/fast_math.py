"""fast-math: exp / erf / tanh / softmax -> TVM's vectorizable polynomial versions (~1e-7 relative error).

TVM's ``FastMathTransform`` with one fix: it reads ``call.op.name`` of every call, and a call of a Relax
function (a ``GlobalVar``: ONNX Loop and Scan bodies import as functions) has no name, so it raised on them.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax import expr_functor
from tvm.relax.transform.fast_math import FastMathCodeGenerator

from . import register_pass


@expr_functor.mutator
class _FastMath(FastMathCodeGenerator._cls):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        if not isinstance(call.op, tvm.ir.Op):  # a call of a function: only its arguments can change
            return relax.PyExprMutator.visit_call_(self, call)
        return super().visit_call_(call)


@register_pass("fast-math", "exp/erf/tanh/softmax -> vectorizable polynomial versions (TVM's; ~1e-7 relative error)")
def fast_math(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="DlcFastMath")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        rewriter = _FastMath(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
        return rewriter.builder_.get()

    return run
