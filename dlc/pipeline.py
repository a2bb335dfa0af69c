"""The compilation pipeline, per target, in named phases: read top to bottom, it is what dlc does.

    graph      dlc's graph rewrites on Relax: Sum -> adds, BN -> arithmetic folded into conv weights,
               filters padded to whole vectors and NCHW -> blocked NCHW[x]c on llvm, constants folded
               (weights pre-packed)
    legalize   Relax ops -> TensorIR PrimFuncs
    fuse       producer/consumer PrimFuncs -> one kernel each
    schedule   every kernel: user rule > tuned record > hand-written rule > fallback
    lower      Relax -> VM-ready form (memory planning, shape lowering)

``Pipeline.run`` applies them in order and, with ``dump_dir``, writes the IR after each phase as
``NN_<phase>.py`` (TVMScript). ``tune`` extracts its tasks from the module after ``fuse``, so it tunes
exactly the kernels that ``schedule`` will look up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm import tirx
from tvm.relax.backend.cpu_generic import pipeline as cpu_backend
from tvm.relax.backend.cuda import pipeline as cuda_backend

from ._native import quiet_tvm_logs
from .errors import CompileError, DlcError
from .options import CompileOptions
from .passes import PASSES
from .schedule import KernelReport, TunedLookup, schedule_module
from .target import is_cuda


@dataclass
class Phase:
    name: str
    passes: list[str]  # names in dlc.passes.PASSES; empty for phases that are not pass lists
    run: Callable[[tvm.IRModule], tvm.IRModule] | None = None


def graph_passes(target: tvm.target.Target) -> list[str]:
    simplify = ["remove-dropout", "sum-to-add", "decompose-inference", "canonicalize", "fold-constant", "fold-affine",
                # libm's exp/erf/tanh/pow are scalar calls: ~20 ns per element, the bulk of a softmax, GELU or LRN.
                "fast-math", "power-to-sqrt"]
    # cuda keeps NCHW: its conv rules read NCHW directly (coalesced along W); see schedules/cuda.
    layout = ["winograd"] if is_cuda(target) else [
        "pad-channels", "layout-nchwc", "layout-grouped", "fold-layout-transforms", "fold-constant", "winograd", "cse",
        "reuse-layout-copies"]
    return [*simplify, *layout, "dce"]


def phases(target: tvm.target.Target) -> list[Phase]:
    """The phases for a target, before options (disabled passes) are applied."""
    return [
        Phase("graph", graph_passes(target)),
        Phase("legalize", ["dispatch-sampling", "dispatch-sort-scan", "legalize", "annotate-op-pattern",
                           "fusable-layout-transforms", "fold-constant"]),
        Phase("fuse", ["fuse-ops", "fuse-tir", "dce"]),
        Phase("schedule", []),
        Phase("lower", []),
    ]


@dataclass
class Pipeline:
    target: tvm.target.Target
    options: CompileOptions = field(default_factory=CompileOptions)
    tuned: TunedLookup | None = None
    log: Callable[[str], None] = lambda msg: None
    kernels: list[KernelReport] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def disabled(self) -> tuple[str, ...]:
        return tuple(self.options.disable_passes)

    @property
    def dump_dir(self) -> Path | None:
        return Path(self.options.dump_ir) if self.options.dump_ir else None

    def __post_init__(self) -> None:
        for name in self.disabled:
            if name not in PASSES:
                raise DlcError(f"--disable-pass {name}: no such pass (see dlc compile --list-passes)")
            if PASSES[name].required:
                raise DlcError(f"--disable-pass {name}: the build cannot work without it")
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)

    def phases(self) -> list[Phase]:
        out = []
        for p in phases(self.target):
            names = [n for n in p.passes if n not in self.disabled]
            run = {"schedule": self._schedule, "lower": self._lower}.get(p.name) or self._pass_list(names)
            out.append(Phase(p.name, names, run))
        return out

    def _pass_list(self, names: list[str]) -> Callable[[tvm.IRModule], tvm.IRModule]:
        seq = tvm.transform.Sequential([PASSES[n].make(self.target, self.options) for n in names])
        return seq

    def _schedule(self, mod: tvm.IRModule) -> tvm.IRModule:
        mod, self.kernels = schedule_module(mod, self.target, self.tuned)
        if is_cuda(self.target):
            unbound = [k.name for k in self.kernels if k.origin == "none"]
            if unbound:
                raise CompileError(f"no cuda schedule for kernel(s) {', '.join(unbound)}: they would run on the host")
        return mod

    def _lower(self, mod: tvm.IRModule) -> tvm.IRModule:
        backend = cuda_backend if is_cuda(self.target) else cpu_backend  # TVM's own lowering, unchanged
        seq = backend.dataflow_lower_passes(self.target) + backend.finalize_passes(self.target)
        return tvm.transform.Sequential(seq)(mod)

    def run(self, mod: tvm.IRModule, until: str | None = None) -> tvm.IRModule:
        """Apply the phases in order; with ``until``, stop after that phase (``dlc tune`` stops after fuse)."""
        phases = self.phases()
        if until is not None and until not in [p.name for p in phases]:
            raise DlcError(f"no pipeline phase {until!r} (phases: {', '.join(p.name for p in phases)})")
        self._dump(0, "import", mod)
        for i, phase in enumerate(phases, start=1):
            self.log(f"{phase.name}: {', '.join(phase.passes) or phase.name}")
            t0 = time.perf_counter()
            try:
                with self.target, quiet_tvm_logs():
                    mod = phase.run(mod)
            except DlcError:
                raise
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise CompileError(f"phase {phase.name!r} failed: {first}") from e
            self.timings[phase.name] = time.perf_counter() - t0
            self._dump(i, phase.name, mod)
            if phase.name == until:
                break
        return mod

    def _dump(self, index: int, name: str, mod: tvm.IRModule) -> None:
        if self.dump_dir is not None:
            (self.dump_dir / f"{index:02d}_{name}.py").write_text(mod.script())


def count_kernels(mod: tvm.IRModule) -> int:
    return sum(isinstance(f, tirx.PrimFunc) for _, f in mod.functions_items())
