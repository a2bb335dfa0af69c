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
from .rewrite import nchw_channels, rewrite_convs


def _to_blocked(block: int) -> tvm.tirx.IndexMap:
    return tvm.tirx.IndexMap.from_func(lambda n, c, h, w: (n, c // block, h, w, c % block))


def _from_blocked(block: int) -> tvm.tirx.IndexMap:
    return tvm.tirx.IndexMap.from_func(lambda n, cc, h, w, cb: (n, cc * block + cb, h, w))


def _weight_blocked(ib: int, ob: int) -> tvm.tirx.IndexMap:
    return tvm.tirx.IndexMap.from_func(lambda o, i, h, w: (o // ob, i // ib, h, w, i % ib, o % ob))


def _block(bb: relax.BlockBuilder, call: relax.Call, lanes: int) -> relax.Expr:
    a = call.attrs
    groups = int(a.groups)
    channels = nchw_channels(call)
    if groups == 1 or channels is None:
        return call
    c, k = channels
    if groups == c == k:  # depthwise: layout-nchwc's business
        return call
    ib, ob = channel_block(c // groups, lanes), channel_block(k // groups, lanes)
    x = relax.op.layout_transform(call.args[0], _to_blocked(ib))
    w = relax.op.layout_transform(call.args[1], _weight_blocked(ib, ob))
    y = relax.op.nn.conv2d(x, w, strides=a.strides, padding=a.padding, dilation=a.dilation, groups=groups,
                           data_layout=f"NCHW{ib}c", kernel_layout=f"OIHW{ib}i{ob}o",
                           out_layout=f"NCHW{ob}c", out_dtype=a.out_dtype or None)
    return relax.op.layout_transform(bb.normalize(y), _from_blocked(ob))


@register_pass("layout-grouped", "grouped NCHW conv2d -> blocked NCHW[x]c conv wrapped in its own layout transforms")
def layout_grouped(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    lanes = vector_lanes(target)

    @tvm.transform.module_pass(opt_level=0, name="LayoutGrouped")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return rewrite_convs(mod, lambda bb, call: _block(bb, call, lanes))

    return run
