"""Depthwise convolution in NCHW[x]c (``dlc.ops.depthwise_conv2d_nchwc``), with its fused epilogue.

Each output pixel needs only KH*KW FMAs per channel block, so the kernel is bound by loads, not FMAs: an
output-row tile of ``ow_tile`` vectors stays in registers while the KH*KW weight vectors are reused across
it, and input rows are read contiguously (the channel block is innermost).
"""

from __future__ import annotations

from tvm import s_tir

from dlc.schedule import rule
from dlc.schedule.utils import block, extent, inline_epilogue, largest_divisor, parallel_vectorize


@rule("llvm", name="depthwise_nchwc", order=10)
def depthwise_nchwc(func, target):
    sch = s_tir.Schedule(func)
    dw = block(sch, "depthwise_conv2d_nchwc")
    if dw is None:
        return None
    n, c, oh, ow, cb, kh, kw = sch.get_loops(dw)
    out_width = extent(sch, ow)
    if out_width is None:
        return None
    epilogue = inline_epilogue(sch, dw)
    ow_o, ow_i = sch.split(ow, [None, largest_divisor(out_width, 14)])
    sch.reorder(n, c, oh, ow_o, kh, kw, ow_i, cb)
    sch.parallel(sch.fuse(n, c, oh))
    if epilogue is None:
        epilogue = sch.cache_write(dw, 0, "local")
        sch.reverse_compute_at(epilogue, ow_o)
    else:
        sch.reverse_compute_at(epilogue, ow_o)
        sch.set_scope(dw, 0, "local")
    sch.unroll(kw)
    sch.unroll(ow_i)
    sch.vectorize(cb)
    init = sch.decompose_reduction(dw, kh)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(sch.get_loops(epilogue)[-1])
    pad = block(sch, "data_pad")
    if pad is not None:
        parallel_vectorize(sch, pad, target)
    return sch
