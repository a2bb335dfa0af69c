"""The last word for any kernel no other rule took: never fast, never serial-and-scalar on purpose.

llvm: inline what can be inlined, then for each remaining block put the spatial loops outside the reduction
loops, vectorize the innermost spatial loop (moved inside the reductions, so each reduction step is a vector
FMA), and parallelize the fused outer spatial loops.

cuda: TVM's dlight GPU rules (matmul, GEMV, reductions, then dlight's generic fallback), which bind every
kernel to blocks and threads so nvcc can compile it.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import try_inline
from tvm.target import Target

from ..target import host_cpu_count, vector_lanes
from .registry import REGISTRY


def _extent(sch: s_tir.Schedule, loop) -> int | None:
    ext = sch.get(loop).extent
    return int(ext) if isinstance(ext, tirx.IntImm) else None


def _vector_factor(extent: int | None, lanes: int) -> int:
    """Largest power of two <= lanes that divides extent (1 = do not vectorize)."""
    if extent is None:
        return 1
    f = lanes
    while f > 1 and extent % f:
        f //= 2
    return f


def schedule_block_cpu(sch: s_tir.Schedule, block, kinds: str, lanes: int, cores: int) -> None:
    """Parallel outer spatial loops + vectorized innermost spatial loop for one block."""
    loops = sch.get_loops(block)
    if len(loops) != len(kinds) or "O" in kinds:
        return
    spatial = [lp for lp, k in zip(loops, kinds) if k == "S"]
    reduce = [lp for lp, k in zip(loops, kinds) if k == "R"]
    if not spatial:
        spatial = [sch.add_unit_loop(block)]
    sch.reorder(*spatial, *reduce)
    vec = None
    factor = _vector_factor(_extent(sch, spatial[-1]), lanes)
    if factor > 1:
        outer, vec = sch.split(spatial[-1], [None, factor])
        spatial = [*spatial[:-1], outer]
    # Fuse leading spatial loops until there is enough parallel work for every core several times over.
    n, work = 0, 1
    while n < len(spatial) and work < 8 * cores:
        work *= _extent(sch, spatial[n]) or 8 * cores
        n += 1
    par = sch.fuse(*spatial[:n]) if n > 1 else spatial[0]
    sch.parallel(par)
    if vec is not None:
        if reduce:
            sch.reorder(*spatial[n:], *reduce, vec)
        sch.vectorize(vec)
    if reduce:
        init = sch.decompose_reduction(block, reduce[0])  # after vectorize: see notes/tvm-0.27.md §4
        if vec is not None:
            sch.vectorize(sch.get_loops(init)[-1])


def cpu_fallback(func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    if infos is None:
        return None
    lanes, cores = vector_lanes(target), int(target.attrs.get("num-cores", host_cpu_count()))
    for info in try_inline(sch, infos):
        try:
            schedule_block_cpu(sch, info.block_rv, info.dom_kind(), lanes, cores)
        except s_tir.ScheduleError:
            continue  # leave this block as it is; the others still get scheduled
    return sch


_DLIGHT_GPU = (dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback())


def cuda_fallback(func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
    for r in _DLIGHT_GPU:
        try:
            with target:
                sch = r.apply(func, target, False)
        except Exception:  # a dlight rule that does not fit raises instead of returning None
            continue
        if isinstance(sch, list):
            sch = sch[0] if sch else None
        if sch is not None:
            return sch
    return None


REGISTRY.add(cpu_fallback, target="llvm", name="generic", order=1000, origin="fallback")
REGISTRY.add(cuda_fallback, target="cuda", name="dlight", order=1000, origin="fallback")
