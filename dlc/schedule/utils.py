"""Small helpers for writing schedule rules (dlc's own in ``schedules/`` and users' alike).

A rule gets a PrimFunc and returns a scheduled ``tvm.s_tir.Schedule`` or None. Most CPU rules share the same
moves: find the anchor block, fold its elementwise epilogue into one block computed per output tile, and
make the remaining loops parallel outside and vectorized inside. Those moves live here.
"""

from __future__ import annotations

import tvm_ffi
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..target import host_cpu_count, vector_lanes

_get_sblock_realize = tvm_ffi.get_global_func("s_tir.schedule.GetSBlockRealize")


class NotMine(Exception):
    """Raised inside a rule to say "not mine" from deep in a helper; the registry treats it as None."""


def block(sch: s_tir.Schedule, name: str) -> SBlockRV | None:
    """The block called ``name``, or None (``get_sblock`` raises instead)."""
    try:
        return sch.get_sblock(name)
    except Exception:  # ScheduleError / ValueError: not in this function
        return None


def block_names(sch: s_tir.Schedule) -> list[str]:
    return [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]


def extent(sch: s_tir.Schedule, loop) -> int | None:
    ext = sch.get(loop).extent
    return int(ext) if isinstance(ext, tirx.IntImm) else None


def iter_kinds(sch: s_tir.Schedule, blk: SBlockRV) -> str:
    """"S"/"R"/"O" per block iterator, e.g. "SSSSSRRRR" for a conv."""
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return "".join(kinds.get(iv.iter_type, "O") for iv in sch.get(blk).iter_vars)


def loop_kinds(sch: s_tir.Schedule, blk: SBlockRV) -> list[str]:
    """For each loop around ``blk``: "S" if it drives a spatial iterator, "R" a reduction one, "-" neither.

    Unlike ``iter_kinds`` this stays right after ``compute_at`` and splits, which change the loops.
    """
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    realize = _get_sblock_realize(sch, blk)
    used: dict = {}
    for iv, value in zip(sch.get(blk).iter_vars, realize.iter_values):
        kind = kinds.get(iv.iter_type, "O")
        tvm_ffi.structural_walk(value, [(tirx.Var, lambda v, k=kind: used.setdefault(v, set()).add(k))])
    out = []
    for lp in sch.get_loops(blk):
        ks = used.get(sch.get(lp).loop_var, set())
        out.append("R" if "R" in ks else "S" if "S" in ks else "-")
    return out


def loops_below(sch: s_tir.Schedule, blk: SBlockRV, outer) -> list[tuple]:
    """(loop, kind) for the loops of ``blk`` nested under loop ``outer``, unit-extent loops left out.

    After ``compute_at`` a block's loops are re-created for the region it must compute; this names them
    without guessing how many there are."""
    loops, kinds = sch.get_loops(blk), loop_kinds(sch, blk)
    start = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(outer))) + 1
    return [(lp, k) for lp, k in zip(loops[start:], kinds[start:]) if extent(sch, lp) != 1]


def cores(target) -> int:
    return int(target.attrs.get("num-cores", host_cpu_count()))


def lanes(target, bits: int = 32) -> int:
    return vector_lanes(target, bits)


def largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def tunable_split(sch: s_tir.Schedule, loop, inner: int, at_most: int) -> list:
    """Split ``loop`` into (outer, ``inner``) through a sampled perfect tile whose decision is ``inner``.

    A compile gets exactly the split the rule chose. The choice is also a decision in the schedule's trace,
    so the rule is a MetaSchedule design space: ``dlc tune`` replays the trace with other decisions (any
    divisor up to ``at_most``) and its cost model searches the rule's tile sizes per shape.
    """
    n = extent(sch, loop)
    if n is None or n % inner:
        return sch.split(loop, [None, inner])
    factors = sch.sample_perfect_tile(loop, n=2, max_innermost_factor=max(inner, at_most),
                                      decision=[n // inner, inner])
    return sch.split(loop, factors)


def inline_epilogue(sch: s_tir.Schedule, anchor: SBlockRV) -> SBlockRV | None:
    """Inline every elementwise/injective block after ``anchor`` into the one block writing the output.

    ``conv -> add(bias) -> add(residual) -> relu`` becomes ``conv -> relu(conv + bias + residual)``, and a GELU
    (which reads its input twice) becomes one block too: a single epilogue that a rule computes per output
    tile of the anchor, so the anchor's result never goes to memory. Blocks that feed the anchor (padding)
    are left alone. Returns the epilogue block, or None when the anchor itself writes the output.
    """
    producers = {sch.get(b).name_hint for b in sch.get_producers(anchor)}
    progress = True
    while progress:
        progress = False
        for blk in sch.get_child_blocks(sch.get_sblock("root")):
            name = sch.get(blk).name_hint
            if name == sch.get(anchor).name_hint or name in producers:
                continue
            try:
                sch.compute_inline(blk)  # refuses output blocks and reductions
                progress = True
                break
            except s_tir.ScheduleError:
                continue
    consumers = sch.get_consumers(anchor)
    if len(consumers) > 1:
        raise NotMine("the anchor's result feeds several outputs")
    return consumers[0] if consumers else None


def parallel_vectorize(sch: s_tir.Schedule, blk: SBlockRV, target, *, min_work: int | None = None) -> None:
    """Fuse the leading loops of a spatial block until there is enough parallel work, parallelize them,
    and vectorize the innermost loop when its extent is a multiple of a power of two."""
    loops = sch.get_loops(blk)
    if not loops:
        return
    v = lanes(target)
    inner = extent(sch, loops[-1])
    if inner is not None and inner > 1:
        factor = largest_pow2_divisor(inner, v)
        if factor > 1:
            if factor < inner:
                outer, vec = sch.split(loops[-1], [None, factor])
                loops = [*loops[:-1], outer, vec]
            sch.vectorize(loops[-1])
            loops = loops[:-1]
    if not loops:
        return
    need = min_work or 8 * cores(target)
    n, work = 0, 1
    while n < len(loops) and work < need:
        work *= extent(sch, loops[n]) or need
        n += 1
    sch.parallel(sch.fuse(*loops[:n]) if n > 1 else loops[0])


def vectorize_stores(sch: s_tir.Schedule, blk: SBlockRV) -> None:
    """Vectorize ``blk``'s innermost loop so that its store stays whole vectors.

    An epilogue that writes a layout with a smaller channel block than its loop (16 lanes of a conv result
    to NCHW4c: ``out[.., c // 4, .., c % 4]``) is split by that block and vectorizes the inner part: four
    4-float stores. Vectorizing the whole loop stores through an index that is not affine in the lane, and
    TVM scalarizes that into 16 single stores. ShuffleNet's depthwise convs writing NCHW4c/8c: 1.4-2.3x faster.
    """
    loop = sch.get_loops(blk)[-1]
    n = extent(sch, loop)
    (write,) = sch.get(blk).writes
    last = write.source.shape[-1]
    last = int(last) if isinstance(last, tirx.IntImm) else None
    if n and last and 4 <= last < n and n % last == 0:  # 2-float stores measured no faster than 16 single ones
        outer, inner = sch.split(loop, [None, last])
        sch.unroll(outer)
        sch.vectorize(inner)
    else:
        sch.vectorize(loop)


def largest_pow2_divisor(n: int, at_most: int) -> int:
    f = 1
    while f * 2 <= at_most and n % (f * 2) == 0:
        f *= 2
    return f


def spatial_outside_vector_inside(sch: s_tir.Schedule, blk: SBlockRV, target) -> None:
    """The generic CPU block schedule: spatial loops outside the reductions, the innermost spatial loop
    vectorized *inside* them (each reduction step is one vector op), the leading spatial loops fused and
    parallel. Works for any block, spatial or reduction."""
    kinds = iter_kinds(sch, blk)
    loops = sch.get_loops(blk)
    if len(loops) != len(kinds) or "O" in kinds:
        return
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    reduce = [lp for lp, k in zip(loops, kinds) if k == "R"]
    if not spatial:
        spatial = [sch.add_unit_loop(blk)]
    sch.reorder(*spatial, *reduce)
    vec = None
    inner = extent(sch, spatial[-1])
    factor = largest_pow2_divisor(inner, lanes(target)) if inner else 1
    if factor > 1:
        outer, vec = sch.split(spatial[-1], [None, factor])
        spatial = [*spatial[:-1], outer]
    need, n, work = 8 * cores(target), 0, 1
    while n < len(spatial) and work < need:
        work *= extent(sch, spatial[n]) or need
        n += 1
    sch.parallel(sch.fuse(*spatial[:n]) if n > 1 else spatial[0])
    if vec is not None:
        if reduce:
            sch.reorder(*spatial[n:], *reduce, vec)
        sch.vectorize(vec)
    if reduce:
        init = sch.decompose_reduction(blk, reduce[0])  # after vectorize: see notes/tvm-0.27.md §4
        if vec is not None:
            sch.vectorize(sch.get_loops(init)[-1])
