"""Rewriting Relax functions: ``rewrite_call`` for patterns, ``rewrite_convs`` for every conv2d call.

``rewrite_call`` leaves a function alone when its pattern matches nothing: TVM's ``relax.dpl.rewrite_call`` rebuilds the whole function even then, and the rebuild drops ``match_cast``
bindings: the importer's casts that give symbolic shapes a common name (a ``concat`` of operands whose dims
Relax cannot prove equal) go, the op's shape becomes unknown, and legalization can no longer lower it.
"""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import relax
from tvm.relax.dpl import DFPattern
from tvm.relax.dpl import rewrite_call as _tvm_rewrite_call


def matches_anywhere(pattern: DFPattern, func: relax.Function) -> bool:
    """Whether ``rewrite_call`` would find a match: the pattern may look through bound variables, as it does."""
    var2val = relax.analysis.get_var2val(func)
    found = []
    relax.analysis.post_order_visit(func, lambda e: found or (pattern.match(e, var2val) and found.append(e)))
    return bool(found)


def rewrite_call(pattern: DFPattern, rewriter, func: relax.Function) -> relax.Function:
    return _tvm_rewrite_call(pattern, rewriter, func) if matches_anywhere(pattern, func) else func


ConvRewrite = Callable[[relax.BlockBuilder, relax.Call], relax.Expr]


@relax.expr_functor.mutator
class _ConvMutator(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, rewrite: ConvRewrite):
        super().__init__(mod)
        self.rewrite = rewrite

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d":
            return self.rewrite(self.builder_, call)
        return call


def rewrite_convs(mod: tvm.IRModule, rewrite: ConvRewrite) -> tvm.IRModule:
    """Every ``relax.nn.conv2d`` call in the module's Relax functions -> ``rewrite(builder, call)`` (the call itself
    to keep it), operands first; the builder emits whatever the replacement needs."""
    mutator = _ConvMutator(mod, rewrite)
    for gv, func in list(mod.functions_items()):
        if isinstance(func, relax.Function):
            mutator.builder_.update_func(gv, mutator.visit_expr(func))
    return mutator.builder_.get()


def nchw_channels(call: relax.Call) -> tuple[int, int] | None:
    """(input channels, filters) of a conv2d in plain NCHW / OIHW -> NCHW with static channel counts, else None."""
    a = call.attrs
    if (a.data_layout, a.kernel_layout, a.out_layout) != ("NCHW", "OIHW", "NCHW"):
        return None
    x_shape, w_shape = call.args[0].ty.shape, call.args[1].ty.shape
    if x_shape is None or w_shape is None:
        return None
    try:
        return int(x_shape[1]), int(w_shape[0])
    except TypeError:  # symbolic channels
        return None
