"""Winograd transforms (``dlc.ops.winograd``): each tile's a x a arithmetic fully unrolled, channels vectorized.

Both transforms are memory-bound; what matters is touching each input and output element once. The input
transform works per (tile, channel block): the a x a x 16 input patch becomes a x a x 16 partial rows and
then the a*a transformed vectors, with every transform coefficient a constant after unrolling. The output
transform works per (output tile, channel block) and computes its fused epilogue (bias, residual, ReLU) on
the m x m x 16 result before writing it.
"""

from __future__ import annotations

import math

from tvm import s_tir

from dlc.ops.winograd import gemm_tiles
from dlc.schedule import rule
from dlc.schedule.utils import (
    NotMine,
    block,
    extent,
    inline_epilogue,
    lanes,
    largest_divisor,
    largest_pow2_divisor,
    loops_below,
    parallel_vectorize,
)


def _unroll_tile(sch, blk, outer, vec: int) -> None:
    """Unroll the loops of ``blk`` below ``outer`` (a per-tile stage), the innermost vectorized if vec > 1."""
    loops = [lp for lp, _ in loops_below(sch, blk, outer)]
    if vec > 1:
        *loops, inner = loops
        sch.vectorize(inner)
    for lp in loops:
        sch.unroll(lp)


@rule("llvm", name="winograd_input", order=10)
def winograd_input(func, target):
    """Per (tile, channel block): the a x a x vec input patch (zero outside the image), B^T d, then (B^T d) B
    written as a*a vectors, one per tile position, all in registers between the load and the store."""
    sch = s_tir.Schedule(func)
    out, rows, patch = (block(sch, f"winograd_input{s}") for s in ("", "_rows", "_patch"))
    if None in (out, rows, patch):
        return None
    for blk in sch.get_producers(patch):  # an injective producer fused in (the model input's layout change):
        parallel_vectorize(sch, blk, target)  # as it would run unfused; inlined, it would read each pixel 2.25x
    b, p, c = sch.get_loops(out)
    a = math.isqrt(extent(sch, b))
    e, n = sch.split(b, [a, a])
    vec = largest_pow2_divisor(extent(sch, c), lanes(target))
    c_o, c_i = sch.split(c, [None, vec])
    sch.reorder(p, c_o, e, n, c_i)
    task = sch.fuse(p, c_o)
    sch.parallel(task)
    for stage in (rows, patch):
        sch.compute_at(stage, task)
        sch.set_scope(stage, 0, "local")
        _unroll_tile(sch, stage, task, vec)
    _unroll_tile(sch, out, task, vec)
    return sch


@rule("llvm", name="winograd_output", order=10)
def winograd_output(func, target):
    """Per (output tile, channel block): M A from the a*a vectors of M, then A^T (M A) and the fused epilogue
    (bias, residual, ReLU) on the m x m x vec result before it is stored."""
    sch = s_tir.Schedule(func)
    out, cols = block(sch, "winograd_output"), block(sch, "winograd_output_cols")
    if out is None or cols is None:
        return None
    m = extent(sch, sch.get_loops(cols)[1])
    epilogue = inline_epilogue(sch, out)
    n, kc, y, x, kb = sch.get_loops(out)
    vec = largest_pow2_divisor(extent(sch, kb), lanes(target))
    ty, yi = sch.split(y, [None, m])
    tx, xi = sch.split(x, [None, m])
    # Channel blocks innermost: a tile reads its rows of M (K contiguous floats per tile position) in order.
    sch.reorder(n, ty, tx, kc, yi, xi, kb)
    sch.parallel(sch.fuse(n, ty))
    sch.compute_at(cols, kc)
    sch.set_scope(cols, 0, "local")
    _unroll_tile(sch, cols, kc, vec)
    if epilogue is not None:
        sch.set_scope(out, 0, "local")  # the m x m x vec output tile: registers, then the epilogue
        sch.reverse_compute_at(epilogue, kc)
        loops = sch.get_loops(epilogue)
        inner = extent(sch, loops[-1])
        if vec > 1 and inner % vec == 0:
            sch.vectorize(sch.split(loops[-1], [None, vec])[1] if inner > vec else loops[-1])
    for loop in (yi, xi):
        sch.unroll(loop)
    if vec > 1:
        sch.vectorize(kb)
    return sch


U_L1_BYTES = 32 * 1024  # L1 data cache


@rule("llvm", name="winograd_gemm", order=10)
def winograd_gemm(func, target):
    """M[b] = V[b] U[b] per tile position b: a pt x kt register tile (pt rows of V broadcast, kt/16 vectors of
    the packed U per channel), accumulated over all C before it is stored. Tasks are (b, kt-panel of U): the
    panel (C x kt) stays in L2 while the task walks down the rows of V[b]."""
    sch = s_tir.Schedule(func)
    gemm = block(sch, "winograd_gemm")
    if gemm is None:
        return None
    b, p, k, c = sch.get_loops(gemm)
    pt, kt = gemm_tiles(extent(sch, p), extent(sch, k), lanes(target))
    small_u = extent(sch, c) * extent(sch, k) * 4 <= U_L1_BYTES
    vec = largest_pow2_divisor(kt, lanes(target))
    if extent(sch, p) % pt:
        raise NotMine("P not padded to the register tile")
    p_o, p_i = sch.split(p, [None, pt])
    k_o, k_v, k_l = sch.split(k, [None, kt // vec, vec])
    c_o, c_i = sch.split(c, [None, largest_divisor(extent(sch, c), 4)])
    # U[b] small enough for L1: every tile block multiplies all of it (V's rows are read once). Otherwise one
    # C x kt panel of U stays in cache while the task walks down V[b].
    outer = (p_o, k_o) if small_u else (k_o, p_o)
    sch.reorder(b, *outer, c_o, c_i, p_i, k_v, k_l)
    sch.parallel(sch.fuse(b, outer[0]))
    acc = sch.cache_write(gemm, 0, "local")
    sch.reverse_compute_at(acc, outer[1])  # the register tile, stored once its sum over C is complete
    for loop in (c_i, p_i, k_v):
        sch.unroll(loop)
    sch.vectorize(k_l)
    init = sch.decompose_reduction(gemm, c_o)
    sch.vectorize(sch.get_loops(init)[-1])
    _, store = sch.split(sch.get_loops(acc)[-1], [None, vec])
    sch.vectorize(store)
    return sch
