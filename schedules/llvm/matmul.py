"""Dense, matmul and batch matmul (``A[..., M, K] @ B[..., K, N]``), with the fused epilogue.

Gemm's constant weight reaches this kernel already transposed to ``[K, N]`` (``fold-constant``), so for each
``k`` a row of B is contiguous along N: the microkernel holds ``m_tile x n_vectors`` accumulators, and per
``k`` loads ``n_vectors`` vectors of B and broadcasts ``m_tile`` scalars of A. Parallel tasks are
(batch, N tile, M tile). With M = 1 (batch-1 dense) it is a GEMV bound by reading B once: wide N tiles,
split over the cores.
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
)

MAX_ACCUMULATORS = 24


def tiles(m: int, n: int, vec: int) -> tuple[int, int]:
    """(m_tile, n_vectors): accumulators m_tile * n_vectors <= 24; prefer wide N (contiguous B rows)."""
    n_vectors = largest_divisor(n // vec, 4) if n % vec == 0 else 1
    m_tile = largest_divisor(m, MAX_ACCUMULATORS // n_vectors)
    return m_tile, n_vectors


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

    i_o, i_i = sch.split(i, [None, m_tile])
    j_o, j_v, j_l = sch.split(j, [None, n_vectors, vec])
    # N tiles outermost: a thread's consecutive tasks share one K x (n_vectors * vec) panel of B, which stays
    # in L2 while the thread walks down the rows of A.
    sch.reorder(*batch, j_o, i_o, k, i_i, j_v, j_l)
    tile = sch.fuse(*batch, j_o, i_o)  # one parallel task per (batch, N tile, M tile)
    sch.parallel(tile)
    if epilogue is None:
        epilogue = sch.cache_write(mm, 0, "local")
        sch.reverse_compute_at(epilogue, tile)
    else:
        sch.reverse_compute_at(epilogue, tile)
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
