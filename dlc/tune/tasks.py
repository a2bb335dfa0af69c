"""Tuning tasks: the kernels ``dlc compile`` would build, taken from the same pipeline right after ``fuse``.

A task is one distinct kernel (structurally equal kernels of a model are one task, weighted by how often
the model calls them). Its *workload* is the kernel as MetaSchedule stores it: the PrimFunc alone in an IRModule under
the name ``main``, with ``global_symbol = "main"``; ``workload_module`` is the one place that makes it, for
the tuner and for the compile-time lookup alike, so both sides agree on what "the same kernel" is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import onnx
import tvm
import tvm_ffi
from tvm import relax, s_tir, tirx
from tvm.target import Target

from ..errors import DlcError
from ..options import CompileOptions
from ..schedule.apply import _compute_blocks, _gflop, _shapes


def schedule_fingerprint(sch: s_tir.Schedule) -> str:
    """SHA-256 of a schedule's printed trace: "the same schedule" across runs and machines, no IR hashing."""
    return hashlib.sha256(str(sch.trace).encode()).hexdigest()


def workload_module(func: tirx.PrimFunc) -> tvm.IRModule:
    """The kernel as a MetaSchedule workload (what the database stores and looks up)."""
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main").with_attr("tirx.noalias", True)})


@dataclass
class Task:
    name: str  # the first kernel's name
    kernels: list[str]  # every kernel of the model that is this workload
    mod: tvm.IRModule  # workload_module of the kernel
    blocks: str
    shapes: list[list[int | str]]
    gflop: float
    calls: int = 1  # how many times the model calls it (all its kernels together)

    @property
    def func(self) -> tirx.PrimFunc:
        return self.mod["main"]

    @property
    def weight(self) -> int:
        return self.calls

    @property
    def shape_text(self) -> str:
        return " ".join("x".join(map(str, s)) for s in self.shapes)


def _call_counts(mod: tvm.IRModule) -> dict[str, int]:
    """How often the Relax functions call each PrimFunc (fusion shares one PrimFunc between equal calls)."""
    call_tir = tvm.ir.Op.get("relax.call_tir")
    counts: dict[str, int] = {}

    def visit(call: relax.Call) -> None:
        if call.op.same_as(call_tir) and isinstance(call.args[0], tvm.ir.GlobalVar):
            counts[call.args[0].name_hint] = counts.get(call.args[0].name_hint, 0) + 1

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            tvm_ffi.structural_walk(func.body, [(relax.Call, visit)], order="pre")
    return counts


def kernel_tasks(mod: tvm.IRModule) -> list[Task]:
    """One task per distinct unscheduled PrimFunc of a fused module, heaviest (calls x GFLOP) first."""
    counts = _call_counts(mod)
    tasks: list[Task] = []
    by_hash: dict[int, list[Task]] = {}
    for gv, func in sorted(mod.functions_items(), key=lambda item: item[0].name_hint):
        if not isinstance(func, tirx.PrimFunc) or (func.attrs is not None and func.attrs.get("tirx.is_scheduled")):
            continue
        wmod = workload_module(func)
        h = tvm_ffi.structural_hash(wmod)
        same = next((t for t in by_hash.get(h, []) if tvm_ffi.structural_equal(t.mod, wmod)), None)
        if same is not None:
            same.kernels.append(gv.name_hint)
            same.calls += counts.get(gv.name_hint, 1)
            continue
        task = Task(gv.name_hint, [gv.name_hint], wmod, "+".join(_compute_blocks(func)), _shapes(func), _gflop(func),
                    counts.get(gv.name_hint, 1))
        by_hash.setdefault(h, []).append(task)
        tasks.append(task)
    return sorted(tasks, key=lambda t: -t.weight * t.gflop)


def select(tasks: list[Task], pattern: str | None) -> list[Task]:
    """Tasks whose kernel name (any of them) or blocks match ``pattern``: a glob, or ``re:REGEX``."""
    if not pattern:
        return tasks
    if pattern.startswith("re:"):
        try:
            rx = re.compile(pattern[3:])
        except re.error as e:
            raise DlcError(f"bad --tasks regex {pattern[3:]!r}: {e}") from None
        match: Callable[[str], bool] = lambda s: rx.search(s) is not None  # noqa: E731
    else:
        match = lambda s: fnmatch.fnmatchcase(s, pattern)  # noqa: E731
    return [t for t in tasks if any(match(k) for k in t.kernels) or match(t.blocks)]


def extract_tasks(model: str | os.PathLike | onnx.ModelProto, options: CompileOptions,
                  log: Callable[[str], None] = lambda msg: None) -> tuple[Target, list[Task]]:
    """The target and the kernels of ``model`` exactly as ``dlc.compile(model, options=options)`` builds them."""
    from ..api import prepare  # the API imports dlc.tune for the lookup; import here to keep that one-way
    from ..target import resolve_target

    target = resolve_target(options.target)
    _, imported, pipeline = prepare(model, options, target, log)
    fused = pipeline.run(imported.mod, until="fuse")
    return target, kernel_tasks(fused)
