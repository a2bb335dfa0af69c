"""Direct convolution in NCHW[x]c (``dlc.ops.conv2d_nchwc``), 1x1 included, with its fused epilogue.

Register blocking: each parallel task owns one output row segment of ``ow_tile`` pixels times ``oc_tile``
channel blocks. Its accumulators (ow_tile * oc_tile vectors of ``ob`` lanes) stay in registers across the
whole reduction; every step loads ``oc_tile`` weight vectors and broadcasts ``ow_tile`` input scalars into
FMAs. The epilogue (bias, residual add, activation, a layout transform back to NCHW) is computed from the
registers for that tile, so the conv result never goes through memory. Padding is materialized once per
conv by a separate, parallel, vectorized loop.
"""

from __future__ import annotations

from tvm import s_tir

from dlc.schedule import rule
from dlc.schedule.utils import block, extent, inline_epilogue, largest_divisor, parallel_vectorize

# AVX-512 has 32 vector registers: keep the accumulator tile to <= 24 so weights and broadcasts fit too.
MAX_ACCUMULATORS = 24


def tile_sizes(out_width: int, oc_chunks: int) -> tuple[int, int]:
    """(ow_tile, oc_tile): as many accumulators as fit, at least 8 to cover the FMA latency when possible."""
    ow_tile = largest_divisor(out_width, 14)
    oc_tile = 1
    for cand in (4, 3, 2):
        if oc_chunks % cand == 0 and ow_tile * cand <= MAX_ACCUMULATORS and ow_tile * oc_tile < 8:
            oc_tile = cand
            break
    return ow_tile, oc_tile


@rule("llvm", name="conv2d_nchwc", order=10)
def conv2d_nchwc(func, target):
    sch = s_tir.Schedule(func)
    conv = block(sch, "conv2d_nchwc")
    if conv is None:
        return None
    n, oc, oh, ow, ob, ic_o, kh, kw, ic_i = sch.get_loops(conv)
    out_width, oc_chunks = extent(sch, ow), extent(sch, oc)
    if out_width is None or oc_chunks is None:
        return None  # symbolic spatial size: leave it to the fallback
    ow_tile, oc_tile = tile_sizes(out_width, oc_chunks)
    epilogue = inline_epilogue(sch, conv)

    oc_o, oc_i = sch.split(oc, [None, oc_tile])
    ow_o, ow_i = sch.split(ow, [None, ow_tile])
    sch.reorder(n, oc_o, oh, ow_o, ic_o, kh, ic_i, kw, oc_i, ow_i, ob)
    sch.parallel(sch.fuse(n, oc_o, oh))
    if epilogue is None:  # the conv writes the output: accumulate in a local tile, then copy it out
        epilogue = sch.cache_write(conv, 0, "local")
        sch.reverse_compute_at(epilogue, ow_o)
    else:
        sch.reverse_compute_at(epilogue, ow_o)
        sch.set_scope(conv, 0, "local")  # the conv result lives only as this tile: registers after LLVM
    sch.unroll(kw)
    sch.unroll(oc_i)
    sch.unroll(ow_i)
    sch.vectorize(ob)
    init = sch.decompose_reduction(conv, ic_o)  # after vectorize, see notes/tvm-0.27.md §4
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(sch.get_loops(epilogue)[-1])

    pad = block(sch, "data_pad")
    if pad is not None:
        parallel_vectorize(sch, pad, target)
    return sch
