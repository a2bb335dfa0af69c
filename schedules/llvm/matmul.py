"""Dense, matmul and batch matmul (``A[..., M, K] @ B[..., K, N]``), with the fused epilogue.

Gemm's constant weight reaches this kernel already transposed to ``[K, N]`` (``fold-constant``), so for each
``k`` a row of B is contiguous along N: the microkernel holds ``m_tile x n_vectors`` accumulators, and per
``k`` loads ``n_vectors`` vectors of B and broadcasts ``m_tile`` scalars of A. Parallel tasks are
(batch, N tile): each copies its panel of B to a contiguous buffer once and runs every M tile against it.
With M = 1 (batch-1 dense) it is a GEMV bound by reading B once: wide N tiles, split over the cores.
"""

from __future__ import annotations

from tvm import s_tir

from dlc.schedule import rule
from dlc.schedule.utils import (
    block,
    extent,
    inline_epilogue,
    iter_kinds,
    lanes,
    largest_divisor,
    largest_pow2_divisor,
    tunable_split,
)

MAX_ACCUMULATORS = 24


def tiles(m: int, n: int, vec: int) -> tuple[int, int]:
    """(m_tile, n_vectors) of the register tile, both dividing the problem.

    A simple throughput model, per FMA port cycle: the tile issues m_tile * n_vectors FMAs per k for
    m_tile broadcasts of A plus n_vectors loads of B (two loads per cycle), and B's rows come from L2
    (~24 bytes per cycle), so 64 / m_tile bytes of B feed each FMA. Tall tiles (many rows of A) win:
    a 4 x 4 tile is L2-bound at 75% of the FMA rate, 12 x 2 or 8 x 3 are not. Ties go to more accumulators.
    """
    n_vecs = n // vec
    best = (0.0, 0, 1, 1)
    for mt in (d for d in range(1, min(m, MAX_ACCUMULATORS) + 1) if m % d == 0):
        for nv in (d for d in range(1, min(n_vecs, 8) + 1) if n_vecs % d == 0):
            if mt * nv <= MAX_ACCUMULATORS:
                rate = min(2.0, 2.0 * mt * nv / (mt + nv), 24.0 * mt / (vec * 4))
                best = max(best, (rate, mt * nv, mt, nv))
    return best[2], best[3]


@rule("llvm", name="matmul", order=20)
def matmul(func, target):
    sch = s_tir.Schedule(func)
    mm = block(sch, "matmul") or block(sch, "T_matmul_NN") or block(sch, "T_batch_matmul_NN")
    if mm is None or not iter_kinds(sch, mm).endswith("SSR"):
        return None
    *batch, i, j, k = sch.get_loops(mm)
    m, n, kk = extent(sch, i), extent(sch, j), extent(sch, k)
    if None in (m, n, kk):
        return None
    vec = largest_pow2_divisor(n, lanes(target))
    m_tile, n_vectors = tiles(m, n, vec)
    epilogue = inline_epilogue(sch, mm)

    # The tile sizes are the heuristic's, and decisions `dlc tune` may change per shape (tunable_split).
    i_o, i_i = tunable_split(sch, i, m_tile, at_most=MAX_ACCUMULATORS)
    j_vectors, j_l = sch.split(j, [None, vec])
    j_o, j_v = tunable_split(sch, j_vectors, n_vectors, at_most=8)
    sch.reorder(*batch, j_o, i_o, k, i_i, j_v, j_l)
    if m > m_tile:
        # One parallel task per (batch, N tile): it copies its K x (n_vectors * vec) panel of B into a
        # contiguous buffer, then walks down the rows of A against it. Read in place, the panel's rows lie
        # N floats apart (4 KB for N = 1024): every k is a new page and the rows alias in L1.
        panel = sch.fuse(*batch, j_o)
        packed = sch.cache_read(mm, 1, "global")
        sch.compute_at(packed, panel, preserve_unit_loops=True)
        sch.vectorize(sch.get_loops(packed)[-1])
        sch.parallel(panel)
        tile = i_o
    else:  # one row of A: a GEMV, bound by reading B once; spread its N tiles over the cores
        tile = sch.fuse(*batch, j_o, i_o)
        sch.parallel(tile)
    if epilogue is None:
        epilogue = sch.cache_write(mm, 0, "local")
        sch.reverse_compute_at(epilogue, tile, preserve_unit_loops=True)
    else:
        sch.reverse_compute_at(epilogue, tile, preserve_unit_loops=True)
        sch.set_scope(mm, 0, "local")
    k_o, k_i = sch.split(k, [None, largest_divisor(kk, 4)])
    sch.unroll(k_i)
    sch.unroll(i_i)
    sch.unroll(j_v)
    sch.vectorize(j_l)
    init = sch.decompose_reduction(mm, k_o)
    sch.vectorize(sch.get_loops(init)[-1])
    e_loops = sch.get_loops(epilogue)
    inner = extent(sch, e_loops[-1])
    if inner and inner % vec == 0 and inner > vec:
        e_loops = [*e_loops[:-1], *sch.split(e_loops[-1], [None, vec])]
    sch.vectorize(e_loops[-1])
    return sch
