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

from dlc.schedule import rule
from dlc.schedule.utils import block, extent, inline_epilogue, lanes, largest_pow2_divisor, loops_below


@rule("llvm", name="winograd_input", order=10)
def winograd_input(func, target):
    sch = s_tir.Schedule(func)
    out, rows = block(sch, "winograd_input"), block(sch, "winograd_input_rows")
    if out is None or rows is None:
        return None
    b, p, c, r2 = sch.get_loops(out)
    a = math.isqrt(extent(sch, b))
    e, n = sch.split(b, [a, a])
    vec = largest_pow2_divisor(extent(sch, c), lanes(target))
    c_o, c_i = sch.split(c, [None, vec])
    sch.reorder(p, c_o, e, n, r2, c_i)
    task = sch.fuse(p, c_o)
    sch.parallel(task)
    # Row e of the partial transform (a x vec values) is all the next stage needs for its a outputs: small
    # enough (<= 1 KB) for TVM to put it on the stack, where LLVM keeps it in registers.
    sch.compute_at(rows, e)
    sch.set_scope(rows, 0, "local")
    for loop in (e, n, r2):
        sch.unroll(loop)
    sch.vectorize(c_i)
    (x, _), (r_c, _), (r1, _) = loops_below(sch, rows, e)
    sch.reorder(x, r1, r_c)
    sch.unroll(x)
    sch.unroll(r1)
    sch.vectorize(r_c)
    sch.decompose_reduction(rows, r1)
    sch.decompose_reduction(out, r2)
    return sch


@rule("llvm", name="winograd_output", order=10)
def winograd_output(func, target):
    sch = s_tir.Schedule(func)
    out, cols = block(sch, "winograd_output"), block(sch, "winograd_output_cols")
    if out is None or cols is None:
        return None
    m = extent(sch, sch.get_loops(cols)[1])
    epilogue = inline_epilogue(sch, out)
    n, kc, y, x, kb, r1 = sch.get_loops(out)
    ty, yi = sch.split(y, [None, m])
    tx, xi = sch.split(x, [None, m])
    sch.reorder(n, kc, ty, tx, xi, yi, r1, kb)
    task = sch.fuse(n, kc, ty)
    sch.parallel(task)
    if epilogue is None:
        epilogue = sch.cache_write(out, 0, "local")
    else:
        sch.set_scope(out, 0, "local")  # the m x m x vec output tile: registers, then the epilogue
    sch.reverse_compute_at(epilogue, tx)
    sch.compute_at(cols, xi)  # column xi of the partial transform: a x vec values
    sch.set_scope(cols, 0, "local")
    for loop in (xi, yi, r1):
        sch.unroll(loop)
    sch.vectorize(kb)
    sch.decompose_reduction(out, r1)
    (e, _), (ck, _), (r2, _) = loops_below(sch, cols, xi)
    sch.reorder(e, r2, ck)
    sch.unroll(e)
    sch.unroll(r2)
    sch.vectorize(ck)
    sch.decompose_reduction(cols, r2)
    sch.vectorize(sch.get_loops(epilogue)[-1])
    return sch
