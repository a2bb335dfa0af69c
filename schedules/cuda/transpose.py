"""Transposes (and reshape/transpose chains, e.g. attention's head split for K^T): tiled through shared
memory so that both the global reads and the global writes are coalesced.

Matches an injective kernel with one output whose innermost axis is not the innermost axis of the input it
reads: a naive one-thread-per-output mapping would read with a stride. Each thread block moves a
``TILE x TILE`` tile: it reads the tile along the input's rows into shared memory (padded by one word per
row against bank conflicts), then writes it along the output's rows.
"""

from tvm.s_tir.dlight.base import try_inline

from dlc.schedule import rule

from . import _common as C

TILE = 32
ROWS = 8  # threadIdx.y: each thread moves TILE / ROWS elements


@rule("cuda", order=85)
def transpose(func, target):
    k = C.analyze(func)
    if k is None or k.reductions():
        return None
    sch = k.sch
    outputs = try_inline(sch, k.blocks)
    if len(outputs) != 1:
        return None
    block = outputs[0].block_rv
    stmt = sch.get(block)
    if len(stmt.reads) != 1 or len(stmt.iter_vars) < 2:
        return None
    loops = sch.get_loops(block)
    iters = [iv.var for iv in stmt.iter_vars]
    read_inner = C.index_vars(stmt.reads[0].region[-1].min)
    if iters[-1] in read_inner or not read_inner & set(iters):
        return None  # the innermost axes agree: injective.py's plain mapping is coalesced already
    i = max(n for n, v in enumerate(iters) if v in read_inner)  # the input's fastest-moving output axis
    extents = [C.int_extent(iv.dom.extent) for iv in stmt.iter_vars]
    if extents[i] is None or extents[-1] is None or extents[i] % TILE or extents[-1] % TILE:
        return None
    io, ii = sch.split(loops[i], [None, TILE])
    jo, jj = sch.split(loops[-1], [None, TILE])
    others = [lp for n, lp in enumerate(loops) if n not in (i, len(loops) - 1)]
    sch.reorder(*others, io, jo, ii, jj)
    bx = sch.fuse(*others, io, jo)
    ty, _ = sch.split(ii, [ROWS, None])
    sch.reorder(ty, jj)
    sch.bind(bx, "blockIdx.x")
    sch.bind(ty, "threadIdx.y")
    sch.bind(jj, "threadIdx.x")
    cache = sch.cache_read(block, 0, "shared")
    sch.compute_at(cache, bx)
    fused = sch.fuse(*sch.get_loops(cache)[1:])
    _, cy, cx = sch.split(fused, [None, ROWS, TILE])
    sch.bind(cy, "threadIdx.y")
    sch.bind(cx, "threadIdx.x")
    sch.storage_align(cache, 0, axis=-2, factor=TILE, offset=1)
    return sch
