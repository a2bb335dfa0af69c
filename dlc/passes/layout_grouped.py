"""layout-grouped: grouped NCHW convolutions (not depthwise) -> the blocked layout, one conv at a time.

    conv2d(x, W, groups=g)  ->  layout_transform(conv2d(layout_transform(x) : NCHW{ib}c,
                                                        W' : OIHW{ib}i{ob}o, groups=g), back to NCHW)

with ``ib``/``ob`` the largest powers of two dividing the channels of one group (ShuffleNet's 68-channel
groups: 4). TVM's ``ConvertLayout`` cannot do this itself — its conv2d layout inference fails on grouped
convs with blocked layouts ("Invalid layout axis 8b") — so ``layout-nchwc`` leaves them NCHW and this pass
wraps each in its own transforms; ``fold-layout-transforms`` then merges them with their neighbours'.
The weight transform is of a constant and folds away.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..target import vector_lanes
from . import register_pass
from .layout_nchwc import channel_block


def _to_blocked(block: int) -> tvm.tirx.IndexMap:
    return tvm.tirx.IndexMap.from_func(lambda n, c, h, w: (n, c // block, h, w, c % block))


def _from_blocked(block: int) -> tvm.tirx.IndexMap:
    return tvm.tirx.IndexMap.from_func(lambda n, cc, h, w, cb: (n, cc * block + cb, h, w))


def _weight_blocked(ib: int, ob: int) -> tvm.tirx.IndexMap:
    return tvm.tirx.IndexMap.from_func(lambda o, i, h, w: (o // ob, i // ib, h, w, i % ib, o % ob))


@relax.expr_functor.mutator
class _Blocker(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, lanes: int):
        super().__init__(mod)
        self.lanes = lanes

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        if not isinstance(call.op, tvm.ir.Op) or call.op.name != "relax.nn.conv2d":
            return call
        a = call.attrs
        groups = int(a.groups)
        x_shape, w_shape = call.args[0].ty.shape, call.args[1].ty.shape
        if groups == 1 or a.data_layout != "NCHW" or a.kernel_layout != "OIHW" or a.out_layout != "NCHW":
            return call
        try:
            c, k = int(x_shape[1]), int(w_shape[0])
        except TypeError:
            return call
        if groups == c == k:  # depthwise: layout-nchwc's business
            return call
        ib, ob = channel_block(c // groups, self.lanes), channel_block(k // groups, self.lanes)
        x = relax.op.layout_transform(call.args[0], _to_blocked(ib))
        w = relax.op.layout_transform(call.args[1], _weight_blocked(ib, ob))
        y = relax.op.nn.conv2d(x, w, strides=a.strides, padding=a.padding, dilation=a.dilation, groups=groups,
                               data_layout=f"NCHW{ib}c", kernel_layout=f"OIHW{ib}i{ob}o",
                               out_layout=f"NCHW{ob}c", out_dtype=a.out_dtype or None)
        return relax.op.layout_transform(self.builder_.normalize(y), _from_blocked(ob))


@register_pass("layout-grouped", "grouped NCHW conv2d -> blocked NCHW[x]c conv wrapped in its own layout transforms")
def layout_grouped(target: tvm.target.Target) -> tvm.transform.Pass:
    lanes = vector_lanes(target)

    @tvm.transform.module_pass(opt_level=0, name="LayoutGrouped")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        blocker = _Blocker(mod, lanes)
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                blocker.builder_.update_func(gv, blocker.visit_expr(func))
        return blocker.builder_.get()

    return run
