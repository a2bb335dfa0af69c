"""Elementwise, broadcast, transpose, concat, reshape and layout transforms: one pass over memory.

Every block is inlined into the one that writes the output, whose loops are then parallel outside and
vectorized inside. A layout transform's block iterates over its *input*: when that leaves its innermost loop
stepping no access contiguously (a transform to NCHW[x]c behind a channel shuffle: strided reads and writes),
the block is first re-indexed by its output, so that at least the writes are whole vectors and the reads
gather. Otherwise reading strided (a transpose, NCHW[x]c -> NCHW) costs what it costs; writing is contiguous.
"""

from __future__ import annotations

import tvm.sym
from tvm import s_tir, tirx

from dlc.schedule import rule
from dlc.schedule.utils import NotMine, iter_kinds, parallel_vectorize


def _contiguous(analyzer, indices, var) -> bool:
    """Does stepping ``var`` step the access to the next element of its buffer?"""
    *outer, last = [analyzer.simplify(i) for i in indices]

    def coef(e):
        c = tvm.sym.detect_linear_equation(e, [var])
        return c[0] if len(c) == 2 else None

    if any(c is None or not analyzer.can_prove_equal(c, 0) for c in map(coef, outer)):
        return False
    c = coef(last)
    return c is not None and analyzer.can_prove_equal(c, 1)


def in_output_order(sch: s_tir.Schedule, blk) -> None:
    """Re-index ``blk``'s iterations by where it writes (a bijection, e.g. c -> (c // 8, c % 8)) when in its
    own order the innermost iteration steps no access, read or write, to the next element (a layout
    transform fused behind a shuffle: strided reads *and* writes; after: contiguous writes)."""
    block = sch.get(blk)
    ivars = [iv.var for iv in block.iter_vars]
    if not ivars or len(block.writes) != 1:
        return
    indices = [r.min for r in block.writes[0].region]
    if len(indices) == len(ivars) and all(isinstance(i, tirx.Var) and i.same_as(v) for i, v in zip(indices, ivars)):
        return
    analyzer = tvm.sym.Analyzer()
    for iv in block.iter_vars:
        analyzer.bind(iv.var, iv.dom)
    accesses = [indices, *([r.min for r in read.region] for read in block.reads)]
    if any(_contiguous(analyzer, acc, ivars[-1]) for acc in accesses):
        return
    try:
        sch.transform_block_layout(blk, tirx.IndexMap(ivars, indices, None))
    except (s_tir.ScheduleError, ValueError):
        pass  # not a bijection TVM can see: keep the block's order


@rule("llvm", name="injective", order=90)
def injective(func, target):
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    blocks = sch.get_child_blocks(root)
    if not blocks or any("R" in iter_kinds(sch, b) or "O" in iter_kinds(sch, b) for b in blocks):
        return None
    for blk in blocks[:-1]:
        try:
            sch.compute_inline(blk)
        except s_tir.ScheduleError:
            raise NotMine(f"cannot inline {sch.get(blk).name_hint}") from None
    (out,) = sch.get_child_blocks(root)
    in_output_order(sch, out)
    parallel_vectorize(sch, out, target)
    return sch
