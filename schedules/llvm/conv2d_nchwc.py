"""Direct convolution in NCHW[x]c (``dlc.ops.conv2d_nchwc``), 1x1 included, with its fused epilogue.

Register blocking: the innermost tile is ``ow_tile`` output pixels times ``oc_tile`` channel blocks; its
accumulators (ow_tile * oc_tile vectors of ``ob`` lanes) stay in registers while every reduction step loads
``oc_tile`` weight vectors and broadcasts ``ow_tile`` input scalars into FMAs.

Cache blocking depends on the size of a channel tile's weights (``ic_chunk``):

* small (early layers, 1x1 over <= 128 channels): the whole reduction runs in registers; each parallel task
  owns one output row segment and computes the epilogue from the registers, so the conv result never goes
  through memory.
* large (3x3 kernels, deep 1x1 layers): the reduction over input channels runs in chunks whose weights
  (~8 KB) stay in L1 while they are applied to every pixel of the task's output tile (all rows of a small
  image, else one row); the accumulators go through a small buffer between chunks, and the epilogue runs
  once the last chunk is done. Without this, a deep layer re-reads its weights from L2 for every 7 pixels.

Padding (and, for strided 1x1 convs, the subsampling) is materialized once per conv by a separate,
parallel, vectorized loop.
"""

from __future__ import annotations

import math

from tvm import s_tir, tirx

from dlc.schedule import rule
from dlc.schedule.utils import (
    block,
    extent,
    inline_epilogue,
    largest_divisor,
    parallel_vectorize,
    tunable_split,
    vectorize_stores,
)

# AVX-512 has 32 vector registers: keep the accumulator tile to <= 24 so weights and broadcasts fit too.
MAX_ACCUMULATORS = 24
L2_BYTES = 1 << 20  # per core (Skylake-SP and later); weights past half of it stream from L3
L1_BYTES = 24 << 10  # a tile's weights up to this size stay in L1 (32 KB, with room for inputs): no chunks
CHUNK_BYTES = 8 << 10  # weights per input-channel chunk otherwise
ACC_BYTES = 128 << 10  # accumulator buffer of a chunked tile: all output rows up to this size, else one row
ROW_BAND = 4  # output rows per task when the whole reduction runs in registers and rows are outside


def tile_sizes(out_width: int, oc_chunks: int, group_chunks: int | None = None) -> tuple[int, int]:
    """(ow_tile, oc_tile) of the register tile.

    Each reduction step loads oc_tile weight vectors and ow_tile input scalars for ow_tile * oc_tile FMAs;
    two channel tiles of ~7 pixels (14 accumulators, 9 loads) keep both FMA ports busy without running out of
    the 32 registers (measured on ResNet-50's layers against 14x1, 7x4, 8x3, 4x4: the best or close to it).
    """
    ow_tile = next((d for d in (7, 8, 6, 5, 4) if out_width % d == 0), None)
    if ow_tile is None:
        # a whole row when it fits the registers (13x13 layers: a divisor would be 1 pixel, 5 GFLOP/s)
        ow_tile = out_width if out_width <= MAX_ACCUMULATORS else largest_divisor(out_width, 12)
    if group_chunks is not None and group_chunks < oc_chunks:
        # grouped: the tile stays within one group, so every input scalar broadcast feeds all its channel
        # blocks (a tile straddling two groups broadcasts twice). The most FMAs per load (weight vectors
        # + broadcasts): ShuffleNet's 5 blocks per group on 14x14 -> 2 pixels x 5 blocks, not 7 x 1.
        tiles = [(w, t) for w in range(1, min(out_width, MAX_ACCUMULATORS) + 1) if out_width % w == 0
                 for t in range(1, group_chunks + 1) if group_chunks % t == 0 and w * t <= MAX_ACCUMULATORS]
        return max(tiles, key=lambda wt: (wt[0] * wt[1] / (wt[0] + wt[1]), wt[0]))
    oc_tile = next((t for t in (2, 3) if oc_chunks % t == 0 and ow_tile * t <= MAX_ACCUMULATORS), 1)
    return ow_tile, oc_tile


def ic_chunk(ic_blocks: int, block_bytes: int) -> int:
    """Input-channel blocks reduced per pass over the output tile (``ic_blocks`` = all: one pass).

    ``block_bytes`` is what one input-channel block of the tile's weights takes. While the tile's whole
    weights fit L1, one pass keeps the accumulators in registers across the full reduction. Larger weights
    (deep layers, 3x3 kernels) would be streamed from L2 for every few pixels; instead the reduction runs in
    chunks of ~8 KB of weights (at least one block), each reused from L1 across the whole output tile,
    and the accumulators go through a small L1/L2-resident buffer between chunks.
    """
    if ic_blocks * block_bytes <= L1_BYTES:
        return ic_blocks
    return largest_divisor(ic_blocks, max(1, CHUNK_BYTES // block_bytes))


@rule("llvm", name="conv2d_nchwc", order=10)
def conv2d_nchwc(func, target):
    sch = s_tir.Schedule(func)
    conv = block(sch, "conv2d_nchwc")
    if conv is None:
        return None
    n, oc, oh, ow, ob, ic_o, kh, kw, ic_i = sch.get_loops(conv)
    dims = [extent(sch, lp) for lp in (ow, oc, ic_o, kh, kw, ic_i, ob)]
    if None in dims:
        return None  # symbolic spatial size: leave it to the fallback
    out_width, oc_chunks, ic_blocks, kernel_h, kernel_w, ib, out_block = dims
    data_blocks = [r.source.ty.shape[1] for r in sch.get(conv).reads if len(r.source.ty.shape) == 5]
    groups = int(data_blocks[0]) // ic_blocks if data_blocks and isinstance(data_blocks[0], tirx.IntImm) else 1
    ow_tile, oc_tile = tile_sizes(out_width, oc_chunks, oc_chunks // groups if groups > 1 else None)
    block_bytes = kernel_h * kernel_w * ib * oc_tile * out_block * 4  # the tile's weights per input block
    chunk = ic_chunk(ic_blocks, block_bytes)
    epilogue = inline_epilogue(sch, conv)

    # The tile sizes are the heuristic's, and decisions `dlc tune` may change per shape (tunable_split).
    oc_o, oc_i = tunable_split(sch, oc, oc_tile, at_most=4)
    ow_o, ow_i = tunable_split(sch, ow, ow_tile, at_most=MAX_ACCUMULATORS)
    # Whichever of input and weights is larger is walked once: rows outside channel tiles keep a task's input
    # rows in L2 while every channel tile reads them (early layers); channel tiles outside keep one tile's
    # weights in L2 across all rows (late layers, where weights outweigh the image).
    shapes = [r.source.ty.shape for r in sch.get(conv).reads]
    sizes = {len(s): math.prod(int(d) if isinstance(d, tirx.IntImm) else 1 << 20 for d in s[1:]) for s in shapes}
    # weights [K/ob, C/ib, KH, KW, ib, ob] vs one image [C/ib, H, W, ib]; a symbolic height counts as large
    weights_outside = sizes[6] * oc_chunks > sizes[5]
    height = extent(sch, oh)
    if height is None:
        band = 1
    elif chunk < ic_blocks:  # the accumulator buffer spans all rows if it stays small, else one row
        band = height if oc_tile * height * out_width * out_block * 4 <= ACC_BYTES else 1
    else:  # a task's band of rows: its input rows stay in L1/L2 while every channel tile reads them
        band = 1 if weights_outside else largest_divisor(height, ROW_BAND)
    oh_o, *oh_i = tunable_split(sch, oh, band, at_most=height) if band > 1 else [oh]
    outer = [n, oc_o, oh_o] if weights_outside else [n, oh_o, oc_o]
    if chunk < ic_blocks:
        ic_oo, ic_oi = tunable_split(sch, ic_o, chunk, at_most=ic_blocks)
        # Weights too large for L2 come from L3/DRAM once per chunk: read them in memory order then.
        taps = [kh, kw, ic_i] if ic_blocks * block_bytes > L2_BYTES // 2 else [kh, ic_i, kw]
        sch.reorder(*outer, ic_oo, *oh_i, ow_o, ic_oi, *taps, oc_i, ow_i, ob)
        tile, reduction = sch.fuse(*outer), ic_oo
        sch.parallel(tile)
    else:
        sch.reorder(*outer, *oh_i, ow_o, ic_o, kh, ic_i, kw, oc_i, ow_i, ob)
        sch.parallel(sch.fuse(*outer))
        tile, reduction = ow_o, ic_o
    if epilogue is None:  # the conv writes the output: accumulate in a local tile, then copy it out
        epilogue = sch.cache_write(conv, 0, "local")
        sch.reverse_compute_at(epilogue, tile, preserve_unit_loops=True)
    else:
        sch.reverse_compute_at(epilogue, tile, preserve_unit_loops=True)
        sch.set_scope(conv, 0, "local")  # the conv result lives only as this tile: registers after LLVM
    sch.unroll(kw)
    sch.unroll(oc_i)
    sch.unroll(ow_i)
    sch.vectorize(ob)
    init = sch.decompose_reduction(conv, reduction)  # after vectorize, see notes/tvm-0.27.md §4
    sch.vectorize(sch.get_loops(init)[-1])
    vectorize_stores(sch, epilogue)

    for name in ("data_pad", "data_stride"):
        producer = block(sch, name)
        if producer is not None:
            parallel_vectorize(sch, producer, target)
    return sch
