"""fp16 dense / matmul / batch matmul on tensor cores (WMMA 16x16x16, fp16 or fp32 accumulation).

Matches a contraction without a kernel window whose operands are fp16, with at least one 16-row tile of
output (smaller ones are GEMVs: memory-bound, ``matmul.py``). The block is first rewritten into the
canonical ``C[b, i, j] += A[b, i, k] * B[b, j, k]`` (``reindex`` + ``transform_layout``, whatever the
operand layouts were) and padded to whole tiles. Each thread block computes a 64x64 tile with four warps
(2x2), each warp a 32x32 tile of 2x2 WMMA fragments; operands are staged in shared memory with 128-bit
loads, the accumulators go back through shared memory, where the fused epilogue is applied on the way
to global memory. Every sm_75+ arch dlc targets has tensor cores.
"""

from tvm import s_tir
from tvm.s_tir.dlight.gpu.matmul import (
    IterKind,
    auto_inline_consumer_chain,
    detect_iter_traits,
    make_iter_fusion_index_map,
)

from dlc.schedule import rule

from . import _common as C

WARPS = (2, 2)  # warps along i and j
TILES = (2, 2)  # 16x16 fragments per warp along i and j
K_TILES = 2  # 16-deep fragments per shared-memory stage
WARP = 32
VECTOR = 8  # fp16 elements per 128-bit load


def is_fp16_matmul(c: C.Contraction) -> bool:
    return not c.is_convolution() and c.in_dtype == "float16" and c.out_dtype in ("float16", "float32") \
        and (c.extent("data") or 16) >= 16 and (c.extent("weight") or 16) >= 16


def _index_maps(block, trans_b: bool):
    """Index maps to the canonical matmul: block [S, I, J, K], A [S, I, K], B [S, J, K] or [S, K, J], C [S, I, J]."""
    traits = detect_iter_traits(block)
    if traits is None:
        return None
    a, b, c, loops = traits
    s, i, j, k = IterKind.kIter_S, IterKind.kIter_I, IterKind.kIter_J, IterKind.kIter_K
    return (make_iter_fusion_index_map(loops, [s, i, j, k]), make_iter_fusion_index_map(a, [s, i, k]),
            make_iter_fusion_index_map(b, [s, j, k] if trans_b else [s, k, j]), make_iter_fusion_index_map(c, [s, i, j]))


@rule("cuda", order=10)
def matmul_tensorcore(func, target):
    k = C.analyze(func)
    if k is None or len(k.reductions()) != 1:
        return None
    c = C.contraction(k, k.reductions()[0])
    if c is None or not is_fp16_matmul(c):
        return None
    sch, block = k.sch, c.block.block_rv
    C.inline_epilogue(sch, block)
    # C[b, i, j] += A[b, i, k] * B[b, j, k] (or B[b, k, j] if that is how B sits in memory), padded to
    # whole block tiles.
    trans_b = not C.innermost_roles(k, c, 1) & {"weight", "data", "batch"}
    reindexed = [sch.reindex(block, ("read", 0)), sch.reindex(block, ("read", 1)), sch.reindex(block, ("write", 0))]
    maps = _index_maps(sch.get(block), trans_b)
    if maps is None:
        return None
    for rv, (kind, index_map) in zip(reindexed, (("write", maps[1]), ("write", maps[2]), ("read", maps[3]))):
        sch.transform_layout(rv, (kind, 0), index_map)
    sch.transform_block_layout(block, maps[0])
    sch.pad_einsum(block, [1, 16 * WARPS[0] * TILES[0], 16 * WARPS[1] * TILES[1], 16 * K_TILES])

    batch, i, j, kk = sch.get_loops(block)
    i, i16 = sch.split(i, [None, 16])
    j, j16 = sch.split(j, [None, 16])
    kk, k16 = sch.split(kk, [None, 16])
    sch.reorder(i, j, kk, i16, j16, k16)
    fragment = block
    block = sch.blockize(i16)
    i0, i1, i2 = sch.split(i, [None, WARPS[0], TILES[0]])
    j0, j1, j2 = sch.split(j, [None, WARPS[1], TILES[1]])
    k0, k1 = sch.split(kk, [None, K_TILES])
    sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2)
    sch.bind(batch, "blockIdx.y")
    sch.bind(sch.fuse(i0, j0), "blockIdx.x")
    warp = sch.fuse(i1, j1)
    sch.bind(warp, "threadIdx.y")

    for index in (0, 1):
        cache = sch.cache_read(block, index, "shared")
        sch.compute_at(cache, k0)
        C.inline_producers(sch, cache)  # the reindex copies and the padding
        fused = sch.fuse(*sch.get_loops(cache)[-2:])
        vector = VECTOR if C.vector_width(sch, cache, VECTOR) == VECTOR else 1  # no gathers into vectors
        _, ty, tx, vec = sch.split(fused, [None, WARPS[0] * WARPS[1], WARP, vector])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
        sch.vectorize(vec)
        sch.storage_align(cache, 0, axis=-2, factor=16, offset=8)  # skew rows against bank conflicts
    a_frag = sch.cache_read(block, 0, "wmma.matrix_a")
    b_frag = sch.cache_read(block, 1, "wmma.matrix_b")
    sch.compute_at(a_frag, k1)
    sch.compute_at(b_frag, k1)
    to_global = sch.cache_write(block, 0, "shared")
    sch.storage_align(to_global, 0, axis=-2, factor=16, offset=4)
    accumulator = sch.cache_write(block, 0, "wmma.accumulator")
    sch.reverse_compute_at(accumulator, warp)
    sch.reverse_compute_at(to_global, warp)
    init = sch.decompose_reduction(block, k0)

    group = C.wmma_intrinsics()("shared", "shared", "float16", c.out_dtype, trans_b=trans_b)
    try:
        for frag, intrin in ((a_frag, group["load_a"]), (b_frag, group["load_b"]), (accumulator, group["store"])):
            fi, fj = sch.get_loops(frag)[-2:]
            fi0, fi1 = sch.split(fi, [None, 16])
            fj0, fj1 = sch.split(fj, [None, 16])
            sch.reorder(fi0, fj0, fi1, fj1)
            sch.tensorize(fi1, intrin)
        sch.tensorize(sch.get_loops(sch.get_child_blocks(init)[0])[-2], group["init"])
        sch.tensorize(sch.get_loops(fragment)[-3], group["compute"])
    except s_tir.ScheduleError:
        return None  # a shape the intrinsics do not take: the SIMT rule will
    auto_inline_consumer_chain(sch, to_global)  # the epilogue, on the way from shared to global memory
    fused = sch.fuse(*sch.get_loops(to_global)[-2:])
    _, tx = sch.split(fused, [None, WARP])
    sch.bind(tx, "threadIdx.x")
    C.bind_leftovers(sch)
    return sch
