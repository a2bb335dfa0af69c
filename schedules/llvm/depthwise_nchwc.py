"""Depthwise convolution in NCHW[x]c (``dlc.ops.depthwise_conv2d_nchwc``), with its fused epilogue.

Each output pixel needs only KH*KW FMAs per channel block, so the kernel is bound by loads, not FMAs: an
output-row tile of ``ow_tile`` vectors stays in registers while the KH*KW weight vectors are reused across
it, and input rows are read contiguously (the channel block is innermost). The zero padding is computed
per band of output rows, for the input rows the band reads.
"""

from __future__ import annotations

from tvm import s_tir

from dlc.schedule import rule
from dlc.schedule.utils import (
    block,
    extent,
    inline_epilogue,
    largest_divisor,
    tunable_split,
    vectorize_stores,
)

ROW_BAND = 8  # output rows per parallel task: the band's padded input rows (~70 KB at 112 wide) stay in L2


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
    ow_o, ow_i = tunable_split(sch, ow, largest_divisor(out_width, 14), at_most=24)
    height = extent(sch, oh)
    oh_o, oh_i = tunable_split(sch, oh, largest_divisor(height, ROW_BAND) if height else 1, at_most=2 * ROW_BAND)
    sch.reorder(n, c, oh_o, oh_i, ow_o, kh, kw, ow_i, cb)
    band = sch.fuse(n, c, oh_o)
    sch.parallel(band)
    if epilogue is None:
        epilogue = sch.cache_write(dw, 0, "local")
        sch.reverse_compute_at(epilogue, ow_o, preserve_unit_loops=True)
    else:
        sch.reverse_compute_at(epilogue, ow_o, preserve_unit_loops=True)
        sch.set_scope(dw, 0, "local")
    sch.unroll(kw)
    sch.unroll(ow_i)
    sch.vectorize(cb)
    init = sch.decompose_reduction(dw, kh)
    sch.vectorize(sch.get_loops(init)[-1])
    vectorize_stores(sch, epilogue)
    pad = block(sch, "data_pad")
    if pad is not None:
        # Each band of output rows pads just the input rows it reads, into a buffer that stays in cache.
        # Padding the whole image first is a full extra pass over it: with stride 2, more traffic than the
        # conv itself. Bands rather than rows: a row's KH input rows would be padded KH times over.
        sch.compute_at(pad, band, preserve_unit_loops=True)
        sch.vectorize(sch.get_loops(pad)[-1])
    return sch
