"""sum-to-add: ONNX ``Sum`` of n tensors -> a chain of n-1 adds.

TVM imports ``Sum(a, b, c)`` as ``sum(stack([broadcast_to(a), ...]), axis=0)``: a copy of every input into a
new tensor, then a reduction, neither of which fuses with the conv producing ``a`` (ResNet-50's light export writes every
residual connection this way). As adds, they become epilogues of the conv kernels.

    sum(stack([a, b, ...], axis=0), axis=[0], keepdims=False)  ->  add(add(a, b), ...)

A ``broadcast_to`` of an input to the shape it already has is dropped on the way (adds broadcast anyway),
so layout passes see straight through.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_op, is_tuple, wildcard

from . import register_pass
from .rewrite import rewrite_call


def _unbroadcast(expr: relax.Expr) -> relax.Expr:
    """``broadcast_to(x, shape)`` -> ``x`` when x already has that (static) shape."""
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.broadcast_to":
        inner = expr.args[0]
        if tvm_ffi.structural_equal(inner.ty.shape, expr.ty.shape):
            return inner
    return expr


@register_pass("sum-to-add", "sum(stack([a, b, ...]), axis=0) (ONNX Sum) -> a + b + ...")
def sum_to_add(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    @relax.transform.function_pass(opt_level=0, name="SumToAdd")
    class SumToAdd:
        def transform_function(self, func, mod, ctx):
            for n in range(2, 9):  # n-ary Sum; ONNX models rarely sum more than a few tensors
                items = [wildcard() for _ in range(n)]
                stack = is_op("relax.stack")(is_tuple(items))
                pattern = is_op("relax.sum")(stack)

                def rewrite(expr, matched, items=items, stack=stack, pattern=pattern):
                    reduce_axes = [int(a) for a in (matched[pattern].attrs.axis or [])]
                    if int(matched[stack].attrs.axis) != 0 or reduce_axes != [0] or matched[pattern].attrs.keepdims:
                        return expr
                    terms = [_unbroadcast(matched[item]) for item in items]
                    acc = terms[0]
                    for term in terms[1:]:
                        acc = relax.op.add(acc, term)
                    return acc

                func = rewrite_call(pattern, rewrite, func)
            return func

    return SumToAdd()
