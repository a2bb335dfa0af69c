"""Row reductions: softmax, layer norm, global average pooling, ReduceSum/Mean/Max over the last axes.

Matches kernels whose reduction blocks all reduce the same trailing axes of the same leading (row)
axes, followed by at most one elementwise block over the rows (softmax's normalization, layer norm's
scale and shift, the division of a mean). Each row gets one thread block; the threads split the row
and combine their partial results with TVM's cross-thread reduction (warp shuffles + shared memory).
The per-row results live in shared memory, the elementwise tail reads them after a barrier.
"""

from tvm.s_tir.dlight.base import try_inline_contiguous_spatial

from dlc.schedule import rule

from . import _common as C

MIN_ROW = 32  # shorter rows are cheaper as one thread per output (pool.py)


def _threads(row: int | None) -> int:
    t = 32
    while t < C.MAX_THREADS and (row is None or t < row):
        t *= 2
    return t


def _leading_rows(block, rows) -> int | None:
    """How many leading loops of ``block`` walk the reduction's rows (unit extents may differ in number)."""
    want = [C.int_extent(r) for r in rows if C.int_extent(r) != 1]
    n = 0
    for it in block.iters:
        if not want:
            break
        ext = C.int_extent(it.dom)
        if ext == 1:
            n += 1
        elif ext is not None and ext == want[0]:
            want.pop(0)
            n += 1
        else:
            return None
    return n if not want else None


@rule("cuda", order=50)
def row_reduction(func, target):
    k = C.analyze(func)
    if k is None or not k.reductions():
        return None
    if any(C.contraction(k, b) is not None for b in k.reductions()):
        return None  # a convolution or matmul that its own rule did not take
    sch = k.sch
    blocks = try_inline_contiguous_spatial(sch, k.blocks)
    reds, last = blocks[:-1], blocks[-1]
    if last.is_reduction():
        reds, last = blocks, None
    kind = reds[0].dom_kind()
    n_rows = len(kind) - len(kind.lstrip("S"))
    if n_rows == len(kind) or kind != "S" * n_rows + "R" * (len(kind) - n_rows):
        return None
    rows = [x.dom for x in reds[0].iters[:n_rows]]
    row = C.int_extent_product([x.dom for x in reds[0].iters[n_rows:]])
    if row is not None and row < MIN_ROW:
        return None
    for b in reds:
        if not b.is_reduction() or b.dom_kind() != kind or not C.same_extents([x.dom for x in b.iters[:n_rows]], rows):
            return None
    anchor_rows = n_rows
    if last is not None:
        anchor_rows = _leading_rows(last, rows)
        if not last.is_injective() or anchor_rows is None:
            return None
    threads = _threads(row)
    anchor = reds[-1] if last is None else last
    loops = sch.get_loops(anchor.block_rv)
    tail = loops[anchor_rows:] or [sch.add_unit_loop(anchor.block_rv)]
    bx = sch.fuse(*loops[:anchor_rows]) if anchor_rows else sch.add_unit_loop(tail[0])  # one row: one block
    ro, tx = sch.split(sch.fuse(*tail), [None, threads])
    sch.reorder(tx, ro)
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    for b in reversed(reds if last is not None else reds[:-1]):
        for i in range(len(sch.get(b.block_rv).writes)):
            sch.set_scope(b.block_rv, i, "shared")
        sch.compute_at(b.block_rv, bx, preserve_unit_loops=True)
        ro, tx = sch.split(sch.fuse(*sch.get_loops(b.block_rv)[1:]), [None, threads])
        sch.reorder(tx, ro)
        sch.bind(tx, "threadIdx.x")
    C.bind_leftovers(sch)
    return sch
