"""Direct convolution in NCHW[x]c (``dlc.ops.conv2d_nchwc``), 1x1 included, with its fused epilogue.

Register blocking: each parallel task owns one output row segment of ``ow_tile`` pixels times ``oc_tile``
channel blocks. Its accumulators (ow_tile * oc_tile vectors of ``ob`` lanes) stay in registers across the
whole reduction; every step loads ``oc_tile`` weight vectors and broadcasts ``ow_tile`` input scalars into
FMAs. The epilogue (bias, residual add, activation, a layout transform back to NCHW) is computed from the
registers for that tile, so the conv result never goes through memory. Padding is materialized once per
conv by a separate, parallel, vectorized loop.
"""

from __future__ import annotations

import math

from tvm import s_tir, tirx

from dlc.schedule import rule
from dlc.schedule.utils import block, extent, inline_epilogue, largest_divisor, parallel_vectorize

# AVX-512 has 32 vector registers: keep the accumulator tile to <= 24 so weights and broadcasts fit too.
MAX_ACCUMULATORS = 24


def tile_sizes(out_width: int, oc_chunks: int) -> tuple[int, int]:
    """(ow_tile, oc_tile) of the register tile.

    Each reduction step loads oc_tile weight vectors and ow_tile input scalars for ow_tile * oc_tile FMAs;
    two channel tiles of ~7 pixels (14 accumulators, 9 loads) keep both FMA ports busy without running out of
    the 32 registers (measured on ResNet-50's layers against 14x1, 7x4, 8x3, 4x4: the best or close to it).
    """
    ow_tile = next((d for d in (7, 8, 6, 5, 4) if out_width % d == 0), None)
    if ow_tile is None:
        ow_tile = out_width if out_width <= 12 else largest_divisor(out_width, 12)
    oc_tile = next((t for t in (2, 3) if oc_chunks % t == 0 and ow_tile * t <= MAX_ACCUMULATORS), 1)
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
    # Whichever of input and weights is larger is walked once: rows outside channel tiles keep a task's input
    # rows in L2 while every channel tile reads them (early layers); channel tiles outside keep one tile's
    # weights in L2 across all rows (late layers, where weights outweigh the image).
    shapes = [r.source.ty.shape for r in sch.get(conv).reads]
    sizes = {len(s): math.prod(int(d) if isinstance(d, tirx.IntImm) else 1 << 20 for d in s[1:]) for s in shapes}
    if sizes[6] * oc_chunks > sizes[5]:  # (a symbolic input height counts as large)  # weights [K/ob, C/ib, KH, KW, ib, ob] vs one image [C/ib, H, W, ib]
        sch.reorder(n, oc_o, oh, ow_o, ic_o, kh, ic_i, kw, oc_i, ow_i, ob)
        sch.parallel(sch.fuse(n, oc_o, oh))
    else:
        sch.reorder(n, oh, oc_o, ow_o, ic_o, kh, ic_i, kw, oc_i, ow_i, ob)
        sch.parallel(sch.fuse(n, oh, oc_o))
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
