"""Shared by the cuda tests: a model's kernels scheduled and built for an arch (once per session), and
what the tests read off them: launch bounds, thread bindings, ptxas reports, structural verification."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import onnx
import tvm
import tvm_ffi
from dlc._builtin.schedules.cuda._common import import_tensor_intrinsics
from tvm import s_tir, tirx
from tvm.s_tir import meta_schedule as ms

from dlc.build import build
from dlc.build.cuda import DeviceBinary
from dlc.frontend import import_onnx, load_model
from dlc.models import model_path
from dlc.options import CompileOptions
from dlc.pipeline import Pipeline
from dlc.schedule import KernelReport, schedule_module
from dlc.target import resolve_target

# Kernels whose schedule must be hand-written (never dlight's generic fallback) and spill-free.
HEAVY = ("conv2d", "matmul", "dense")


@dataclass
class CudaBuild:
    kernels: list[KernelReport]
    mod: tvm.IRModule  # after the pipeline: scheduled PrimFuncs, Relax lowered for the VM
    binaries: list[DeviceBinary]

    def report(self, kernel: str) -> KernelReport:
        """The schedule report of the PrimFunc a device kernel (``<func>_kernel[_N]``) came from."""
        return next(k for k in self.kernels if kernel.rsplit("_kernel", 1)[0] == k.name)


@functools.cache
def build_model(name: str, arch: str) -> CudaBuild:
    """What ``dlc compile MODEL --target cuda:ARCH`` does, keeping the scheduled module for the checks."""
    target = resolve_target(f"cuda:{arch}")
    pipeline = Pipeline(target)
    mod = pipeline.run(import_onnx(load_model(model_path(name)), {}).mod)
    return CudaBuild(pipeline.kernels, mod, build(mod, target).device_binaries)


def scheduled_kernels(model: onnx.ModelProto, arch: str = "sm_80", **options) -> tuple[dict[str, tirx.PrimFunc], list]:
    """The kernels of a (small) model after the schedule phase, without building: {name: PrimFunc}, reports.
    ``options`` are CompileOptions fields, e.g. ``winograd="off"``."""
    target = resolve_target(f"cuda:{arch}")
    mod = import_onnx(load_model(model), {}).mod
    for phase in Pipeline(target, CompileOptions(**options)).phases():
        if phase.name == "schedule":
            break
        with target:
            mod = phase.run(mod)
    mod, reports = schedule_module(mod, target)
    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)}, reports


def threads_per_kernel(mod: tvm.IRModule) -> dict[str, int]:
    """Threads per block of every kernel the scheduled PrimFuncs launch, named as TVM names them
    (``<func>_kernel``, ``<func>_kernel_1``, ... in program order): the product of the extents bound to
    threadIdx.x/y/z in each top-level thread-bound loop nest."""
    out = {}
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or "dlc.schedule" not in (func.attrs or {}):
            continue
        nests = []

        def visit(loop: tirx.For, nests=nests) -> bool:
            if loop.kind != tirx.ForKind.THREAD_BINDING:
                return True  # keep looking inside
            tags: dict[str, int] = {}

            def inner(x: tirx.For) -> None:
                if x.kind == tirx.ForKind.THREAD_BINDING and x.thread_binding.thread_tag.startswith("threadIdx"):
                    tags[x.thread_binding.thread_tag] = max(tags.get(x.thread_binding.thread_tag, 1), int(x.extent))

            tvm_ffi.structural_walk(loop, [(tirx.For, inner)], order="pre")
            nests.append(math.prod(tags.values()))
            return False  # a launch: its inner loops belong to it

        _walk_outermost(func.body, visit)
        for i, threads in enumerate(nests):
            out[f"{gv.name_hint}_kernel" + (f"_{i}" if i else "")] = threads
    return out


def _walk_outermost(stmt, visit) -> None:
    """Call ``visit`` on the outermost loops; descend only where it returns True."""
    if isinstance(stmt, tirx.For):
        if visit(stmt):
            _walk_outermost(stmt.body, visit)
    elif isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            _walk_outermost(s, visit)
    elif isinstance(stmt, s_tir.SBlockRealize):
        _walk_outermost(stmt.block.body, visit)
    elif isinstance(stmt, s_tir.SBlock) or hasattr(stmt, "body"):
        _walk_outermost(stmt.body, visit)


def is_static(func: tirx.PrimFunc) -> bool:
    return all(isinstance(d, tirx.IntImm) for p in func.params for d in (getattr(p.ty, "shape", None) or []))


def verify_gpu_code(func: tirx.PrimFunc, arch: str = "sm_80") -> bool:
    """MetaSchedule's VerifyGPUCode on a scheduled kernel: lowered, then TVM's ``verify_gpu_code`` with the
    target's limits (threads, shared memory, vector bytes) and the checks that every access is bound.
    Static shapes only (TVM's verifier wants constant launch extents)."""
    target = resolve_target(f"cuda:{arch}")
    import_tensor_intrinsics()  # TuneContext imports them; this way it takes seconds
    ctx = ms.TuneContext(mod=tvm.IRModule({"main": func}), target=target, space_generator="post-order-apply",
                         search_strategy="replay-trace")
    postproc = ms.postproc.VerifyGPUCode()
    postproc._initialize_with_tune_context(ctx)
    return bool(postproc.apply(s_tir.Schedule(func)))


def well_formed(func: tirx.PrimFunc) -> bool:
    return bool(s_tir.analysis.verify_well_formed(func, assert_mode=False))
