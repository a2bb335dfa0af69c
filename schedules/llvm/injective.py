"""Elementwise, broadcast, transpose, concat, reshape and layout transforms: one pass over memory.

Every block is inlined into the one that writes the output, whose loops are then parallel outside and
vectorized inside. Reading strided (a transpose, NCHW[x]c -> NCHW) costs what it costs; writing is contiguous.
"""

from __future__ import annotations

from tvm import s_tir

from dlc.schedule import rule
from dlc.schedule.utils import NotMine, iter_kinds, parallel_vectorize


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
    parallel_vectorize(sch, out, target)
    return sch
