"""Winograd (``dlc.ops.winograd``): transforms fully unrolled per tile with channels vectorized, and the
batched matmul as a register-tiled AVX-512 GEMM.

* Input transform, per (tile, channel block): the a x a x 16 input patch (zero outside the image), B^T d,
  then (B^T d) B stored as a*a vectors, one per tile position; every coefficient is a constant after
  unrolling and the stages stay in registers between the load and the stores.
* Matmul, per tile position b: M[b] = V[b] U[b] with a pt x kt register tile (pt rows of V broadcast, kt/16
  vectors of U packed by the pass so that they are contiguous), summed over all C before it is stored.
* Output transform, per (output tile, channel block): M A, then A^T (M A) and the fused epilogue (bias,
  residual, ReLU) on the m x m x 16 result before it is stored.

A layer whose U is small comes as one kernel (``winograd_conv``): all three run one row of tiles at a time
(two rows, or a segment of one: ``_task``), so V and M (each 2.25x the image at F(4,3)) stay in cache; the
others come as three kernels. With fewer than SMALL_C input channels (an RGB image) the one-kernel form computes
M per output tile inside the output transform, and the input transform runs with a row's tiles in the vector.
"""

from __future__ import annotations

import math

from tvm import s_tir

from dlc.ops.winograd import SMALL_C, gemm_tiles, row_tile
from dlc.schedule import rule
from dlc.schedule.utils import (
    NotMine,
    block,
    extent,
    lanes,
    largest_divisor,
    largest_pow2_divisor,
    loops_below,
    parallel_vectorize,
)

L2_BYTES = 1 << 20  # per core (Skylake-SP and later)
SEGMENT_BYTES = 256 << 10  # V and M of a row segment in the one-kernel form (see _task)
_STAGES = ("winograd_input_patch", "winograd_input_rows", "winograd_input", "winograd_gemm",
           "winograd_output_cols", "winograd_output")


def _unroll_tile(sch, blk, outer, vec: int) -> None:
    """Unroll the loops of ``blk`` below ``outer`` (a per-tile stage), the innermost vectorized if vec > 1."""
    loops = [lp for lp, _ in loops_below(sch, blk, outer)]
    if vec > 1:
        *loops, inner = loops
        sch.vectorize(inner)
    for lp in loops:
        sch.unroll(lp)


def _tile_loops(sch, out, target, *, across_tiles: bool) -> tuple:
    """V's loops (b, p, c) as (tile, channel, e, n, vector): (e, n) the position in the a x a tile, the vector
    innermost over channels or, ``across_tiles``, over tiles. Returns (tile loop, channel loop, lanes)."""
    b, p, c = sch.get_loops(out)[-3:]
    a = math.isqrt(extent(sch, b))
    e, n = sch.split(b, [a, a])
    vec = largest_pow2_divisor(extent(sch, p if across_tiles else c), lanes(target))
    if across_tiles:
        p, inner = sch.split(p, [None, vec])
    else:
        c, inner = sch.split(c, [None, vec])
    sch.reorder(p, c, e, n, inner)
    return p, c, vec


def _input(sch, out, rows, patch, target, *, parallel: bool) -> None:
    """V[b, p, c]: one task per (tile, channel block). The patch and B^T d are inlined, so the a*a vectors go
    load -> registers -> store; as ``local`` buffers they went through memory (5-8% slower per layer: TVM 0.27
    puts every ``local`` buffer of a CPU kernel in a TVMBackendAllocWorkspace block, never in registers)."""
    sch.compute_inline(rows)
    sch.compute_inline(patch)
    p, c_o, vec = _tile_loops(sch, out, target, across_tiles=False)
    task = c_o
    if parallel:
        task = sch.fuse(p, c_o)
        sch.parallel(task)
    _unroll_tile(sch, out, task, vec)


def _input_across_tiles(sch, out, rows, patch, target) -> None:
    """V for a row of tiles with too few channels for a vector (an RGB image): vectors across the row's tiles
    instead, one channel at a time, V stored [b, c, p] so that they are contiguous. In scalars, per tile and
    channel, VGG's 3 -> 64 channel layer at 224x224 ran at 2.98 ms against 2.50. The patch and B^T d stay
    ``local`` stages: inlined, B^T d was recomputed per output and the layer ran at 4.6 ms."""
    sch.transform_layout(out, ("write", 0), lambda b, p, c: (b, c, p))
    _, c, vec = _tile_loops(sch, out, target, across_tiles=True)
    for stage in (rows, patch):
        sch.compute_at(stage, c)
        sch.set_scope(stage, 0, "local")
        _unroll_tile(sch, stage, c, vec)
    _unroll_tile(sch, out, c, vec)


def _gemm(sch, gemm, pt: int, kt: int, target, *, parallel: bool) -> None:
    """M[b, p, k] over its last four loops (b, p, k, c): the pt x kt register tile."""
    b, p, k, c = sch.get_loops(gemm)[-4:]
    vec = largest_pow2_divisor(kt, lanes(target))
    if extent(sch, p) % pt:
        raise NotMine("P not padded to the register tile")
    p_o, p_i = sch.split(p, [None, pt])
    k_o, k_v, k_l = sch.split(k, [None, kt // vec, vec])
    c_o, c_i = sch.split(c, [None, largest_divisor(extent(sch, c), 4)])
    # One C x kt panel of U stays in cache while the task walks down V[b]'s tiles. The other order (each block
    # of tiles multiplies all of U[b], V's rows read once), which this rule used where U[b] <= 32 KB, measured
    # 4-8% slower per layer in the one-kernel form (64 -> 128 channels at 112x112: 8.04 vs 7.61 ms; 64 at
    # 224x224: 24.1 vs 22.3 ms) and the same in the three-kernel form (a U[b] of 32 KB is all of L1).
    sch.reorder(b, k_o, p_o, c_o, c_i, p_i, k_v, k_l)
    if parallel:
        sch.parallel(sch.fuse(b, k_o))
    for loop in (c_i, p_i, k_v):
        sch.unroll(loop)
    sch.vectorize(k_l)
    # The sum accumulates in M itself: LLVM keeps the register tile in registers across the loop over C (M
    # does not alias V or U) and stores it once. A ``local`` cache of the tile (cache_write) came with a
    # workspace per task, a memset per tile and a second store: 5-10% slower per layer.
    init = sch.decompose_reduction(gemm, c_o)
    sch.vectorize(sch.get_loops(init)[-1])


def _gemm_per_tile(sch, gemm, tile, target) -> None:
    """M for one output tile and channel block (``tile``: the output transform's loop whose body is one of
    them), computed where the output transform reads it: all a*a positions b as vectors of output channels,
    summed over the few input channels. With C < SMALL_C a register tile would be stored after only C
    multiply-adds, and M would go through cache for nothing."""
    sch.compute_at(gemm, tile)
    sch.set_scope(gemm, 0, "local")
    b, k, c = (lp for lp, _ in loops_below(sch, gemm, tile))  # the tile's own loop (extent 1) is gone
    sch.reorder(b, c, k)
    if extent(sch, k) % lanes(target) == 0:
        sch.vectorize(k)
    for loop in (b, c):
        sch.unroll(loop)
    init = sch.decompose_reduction(gemm, c)
    if extent(sch, k) % lanes(target) == 0:
        sch.vectorize(sch.get_loops(init)[-1])


def _epilogue(sch, out):
    """Inline the elementwise chain after ``out`` (bias, residual, ReLU, a layout change) into its last block and
    return that block (None if ``out`` is the output). Unlike ``inline_epilogue`` this leaves the blocks before
    ``out`` alone: in the one-kernel form they are the other Winograd stages."""
    while True:
        consumers = sch.get_consumers(out)
        if len(consumers) > 1:
            raise NotMine("the output transform feeds several blocks")
        if not consumers:
            return None
        if not sch.get_consumers(consumers[0]):
            if _elements(sch, consumers[0]) != _elements(sch, out):
                raise NotMine("the epilogue is not elementwise (a concatenate?)")
            return consumers[0]
        sch.compute_inline(consumers[0])


def _elements(sch, blk) -> int:
    """Points a spatial block computes (the elements it writes)."""
    return math.prod(int(iv.dom.extent) for iv in sch.get(blk).iter_vars)


def _output(sch, out, cols, target, *, inline_cols: bool = True, rows: int = 1, segment: int | None = None,
            channels_outer: bool = False):
    """Output tiles, channel blocks innermost (a tile reads its rows of M in order), M A inlined (as a
    ``local`` stage it went through a workspace in memory: 13% slower; but kept where M is computed per tile,
    ``_gemm_per_tile``, which is faster with it). Returns the parallel loop over tasks (``rows`` rows of tiles,
    or a ``segment`` of a row) and the loop whose body is one output tile of one channel block: the loop over
    the tile's channel blocks, or with ``channels_outer`` (a row at a time) the loop over the row's tiles
    inside each channel block."""
    m = extent(sch, sch.get_loops(cols)[-3])
    if inline_cols:
        sch.compute_inline(cols)
    epilogue = _epilogue(sch, out)
    n, kc, y, x, kb = sch.get_loops(out)
    vec = largest_pow2_divisor(extent(sch, kb), lanes(target))
    ty, yi = sch.split(y, [None, m])
    tx, xi = sch.split(x, [None, m])
    if segment:  # _task's segments divide the row and are shorter than it
        tx_o, tx = sch.split(tx, [None, segment])
        sch.reorder(n, ty, tx_o, tx, kc, yi, xi, kb)
        row = sch.fuse(n, ty, tx_o)
    elif rows > 1:  # the last task may hold fewer rows: TVM bounds its region
        ty_o, ty = sch.split(ty, [None, rows])
        sch.reorder(n, ty_o, ty, tx, kc, yi, xi, kb)
        row = sch.fuse(n, ty_o)
    elif channels_outer:
        sch.reorder(n, ty, kc, tx, yi, xi, kb)
        row = sch.fuse(n, ty)
    else:
        sch.reorder(n, ty, tx, kc, yi, xi, kb)
        row = sch.fuse(n, ty)
    sch.parallel(row)
    tile = tx if channels_outer else kc  # the loop whose body is one tile of one channel block
    if not inline_cols:
        sch.compute_at(cols, tile)
        sch.set_scope(cols, 0, "local")
        _unroll_tile(sch, cols, tile, vec)
    if epilogue is not None:
        sch.set_scope(out, 0, "local")  # the m x m x vec output tile: registers, then the epilogue
        sch.reverse_compute_at(epilogue, tile)
        loops = sch.get_loops(epilogue)
        inner = extent(sch, loops[-1])
        if vec > 1 and inner % vec == 0:
            sch.vectorize(sch.split(loops[-1], [None, vec])[1] if inner > vec else loops[-1])
    for loop in (yi, xi):
        sch.unroll(loop)
    if vec > 1:
        sch.vectorize(kb)
    return row, tile


def _task(sch, gemm, out, m: int) -> tuple[int, int | None]:
    """(rows of tiles, tiles of a row) per task in the one-kernel form; (1, None): a row at a time.

    Every task reads all of U, and holds its tiles' V and M. Where U does not fit L2 it comes from L3 once per
    task: two rows per task halve that (VGG's 64->128 and 128->128 at 112x112, 128->256 at 56x56, ResNet's
    128->128 at 28x28: 3-8% faster). Where U fits L2 but a row's V and M would fill it, a task takes a
    segment of a row instead: VGG's 64->64 at 224x224 (V + M 1 MB a row, U 0.6 MB) ran in 8-tile segments
    in 15.5 ms against 18 ms a row at a time; 128->128 at 112x112 (U 2.4 MB) ran slower in segments."""
    b, _, k, c = (extent(sch, lp) for lp in sch.get_loops(gemm)[-4:])
    row_tiles = -(-extent(sch, sch.get_loops(out)[3]) // m)
    tile_bytes = b * (k + c) * 4  # one tile's V and M
    if b * c * k * 4 > L2_BYTES:
        return (2, None) if row_tile(2 * row_tiles) else (1, None)
    if row_tiles * tile_bytes <= L2_BYTES // 2:
        return 1, None
    fits = [s for s in range(4, row_tiles) if row_tiles % s == 0 and row_tile(s) and s * tile_bytes <= SEGMENT_BYTES]
    return 1, max(fits, default=None)


@rule("llvm", name="winograd_conv", order=5)
def winograd_conv(func, target):
    """The one-kernel form: per row of output tiles, its V, its M, then its outputs."""
    sch = s_tir.Schedule(func)
    patch, rows, v, gemm, cols, out = (block(sch, name) for name in _STAGES)
    if None in (patch, rows, v, gemm, cols, out):
        return None
    per_tile = extent(sch, sch.get_loops(gemm)[-1]) < SMALL_C
    task_rows, segment = (1, None) if per_tile else _task(sch, gemm, out, extent(sch, sch.get_loops(cols)[-3]))
    # Per tile: the channel block outside the row's tiles, so that its part of U (a*a x C x 16 floats: 6.9 KB for
    # an RGB image) stays in L1 across the row; tiles outside, all of U (27 KB) and the row's V (24 KB) took
    # turns in L1: 3.35 -> 2.75 ms at VGG's 3 -> 64 channels, 224x224.
    row, tile = _output(sch, out, cols, target, inline_cols=not per_tile, rows=task_rows, segment=segment,
                        channels_outer=per_tile)
    if per_tile:
        _gemm_per_tile(sch, gemm, tile, target)
        sch.compute_at(v, row)
        _input_across_tiles(sch, v, rows, patch, target)
        return sch
    sch.compute_at(gemm, row)
    sch.compute_at(v, row)
    _, p, k, _ = sch.get_loops(gemm)[-4:]
    pt, kt = row_tile(extent(sch, p)), gemm_tiles(extent(sch, p), extent(sch, k), lanes(target))[1]
    if pt is None:
        raise NotMine("no register tile divides a row of tiles")
    _gemm(sch, gemm, pt, kt, target, parallel=False)
    _input(sch, v, rows, patch, target, parallel=False)
    return sch


@rule("llvm", name="winograd_input", order=10)
def winograd_input(func, target):
    sch = s_tir.Schedule(func)
    out, rows, patch = (block(sch, f"winograd_input{s}") for s in ("", "_rows", "_patch"))
    if None in (out, rows, patch) or block(sch, "winograd_gemm") is not None:
        return None
    for blk in sch.get_producers(patch):  # an injective producer fused in (the model input's layout change):
        parallel_vectorize(sch, blk, target)  # as it would run unfused; inlined, it would read each pixel 2.25x
    _input(sch, out, rows, patch, target, parallel=True)
    return sch


@rule("llvm", name="winograd_gemm", order=10)
def winograd_gemm(func, target):
    sch = s_tir.Schedule(func)
    gemm = block(sch, "winograd_gemm")
    if gemm is None or block(sch, "winograd_input") is not None:
        return None
    _, p, k, _ = sch.get_loops(gemm)
    pt, kt = gemm_tiles(extent(sch, p), extent(sch, k), lanes(target))
    _gemm(sch, gemm, pt, kt, target, parallel=True)
    return sch


@rule("llvm", name="winograd_output", order=10)
def winograd_output(func, target):
    sch = s_tir.Schedule(func)
    out, cols = block(sch, "winograd_output"), block(sch, "winograd_output_cols")
    if out is None or cols is None or block(sch, "winograd_gemm") is not None:
        return None
    _output(sch, out, cols, target)
    return sch
