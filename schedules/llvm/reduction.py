"""Row-wise reductions and what surrounds them: softmax, layer norm, mean/sum/max, pooling.

One parallel loop over the output's leading axes ("rows"); every block is computed inside it for its own
row, so a softmax reads its row from memory once and the row stays in L1 through max, exp, sum and divide.
Each block then gets the generic treatment (innermost spatial loop vectorized inside its reductions); a
reduction of a row to one value runs as ``lanes`` partial results (``rfactor``), one vector op per step.
Pooling's padding is inlined into the pooling reduction.
"""

from __future__ import annotations

from tvm import s_tir

from dlc.schedule import rule
from dlc.schedule.utils import NotMine, cores, extent, iter_kinds, lanes, largest_pow2_divisor, loop_kinds


def _row_loops(sch: s_tir.Schedule, out, target):
    """The leading spatial loops of the output block to fuse into the parallel row loop."""
    loops = sch.get_loops(out)
    kinds = iter_kinds(sch, out)
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    if "R" in kinds:  # the output block is itself a reduction (max pool, sum): keep the last spatial loop
        rows = spatial[:-1] if len(spatial) > 1 else spatial
    else:
        rows = spatial[:-1]
    n, work = 0, 1
    while n < len(rows) and work < 8 * cores(target):
        work *= extent(sch, rows[n]) or 1
        n += 1
    return rows[: max(n, 1)]


def _vectorize_block(sch: s_tir.Schedule, blk, row, target) -> None:
    loops = sch.get_loops(blk)
    below = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(row))) + 1
    own = list(zip(loops[below:], loop_kinds(sch, blk)[below:]))
    spatial = [lp for lp, k in own if k == "S" and (extent(sch, lp) or 1) > 1]
    reduce = [lp for lp, k in own if k == "R"]
    if not spatial:
        return
    inner = spatial[-1]
    factor = largest_pow2_divisor(extent(sch, inner) or 1, lanes(target))
    if factor <= 1:
        return
    _, vec = sch.split(inner, [None, factor])
    if reduce:
        sch.reorder(*reduce, vec)
    sch.vectorize(vec)
    if reduce:
        init = sch.decompose_reduction(blk, reduce[0])
        sch.vectorize(sch.get_loops(init)[-1])


def _split_row_reduction(sch: s_tir.Schedule, blk, target) -> None:
    """A reduction of each row's last axis to one value (softmax's max and sum, layer norm's moments): ``lanes``
    partial results side by side (``rfactor``), so that every step is one vector op, then a short scalar
    reduction of the lanes. Left scalar, the exp or square inside such a reduction runs element by element."""
    inner = sch.get_loops(blk)[-1]
    factor = largest_pow2_divisor(extent(sch, inner) or 1, lanes(target))
    if factor <= 1:
        return
    _, lane = sch.split(inner, [None, factor])
    try:
        sch.rfactor(lane, 0)  # the partial block: the lanes are a spatial loop, vectorized with the others below
    except s_tir.ScheduleError:  # a reducer rfactor cannot split (argmax's index/value pair): stays scalar
        pass


@rule("llvm", name="reduction", order=40)
def reduction(func, target):
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    blocks = sch.get_child_blocks(root)
    if not any("R" in iter_kinds(sch, b) for b in blocks):
        return None
    # Padding and other injective producers fold into their consumers.
    for blk in blocks[:-1]:
        if "R" not in iter_kinds(sch, blk):
            try:
                sch.compute_inline(blk)
            except s_tir.ScheduleError:
                pass
    blocks = sch.get_child_blocks(root)
    out = blocks[-1]
    out_spatial = iter_kinds(sch, out).count("S")
    for blk in blocks[:-1]:
        kinds = iter_kinds(sch, blk)
        if kinds.endswith("R") and kinds.count("S") < out_spatial and len(sch.get_loops(blk)) == len(kinds):
            _split_row_reduction(sch, blk, target)
    blocks = sch.get_child_blocks(root)
    rows = _row_loops(sch, out, target)
    if not rows:  # a reduction to one scalar (argmax, sum of everything): no rows to spread
        raise NotMine("the output has no spatial loop")
    try:
        row = sch.fuse(*rows) if len(rows) > 1 else rows[0]
        sch.parallel(row)
    except s_tir.ScheduleError:  # e.g. a scan (cumsum): its loops carry a dependence, no row to spread
        raise NotMine("the output's leading loops cannot run in parallel") from None
    for blk in reversed(blocks[:-1]):
        try:
            sch.compute_at(blk, row)
        except s_tir.ScheduleError:
            raise NotMine(f"{sch.get(blk).name_hint} does not fit the row loop") from None
    for blk in blocks:
        try:
            _vectorize_block(sch, blk, row, target)
        except s_tir.ScheduleError:
            continue
    return sch
