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

from .registry import REGISTRY
from .utils import spatial_outside_vector_inside


def cpu_fallback(func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    if infos is None:
        return None
    for info in try_inline(sch, infos):
        try:
            spatial_outside_vector_inside(sch, info.block_rv, target)
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
