"""Schedule every kernel of a module: the first of user rule > tuned record > hand rule > fallback.

Each scheduled PrimFunc is marked ``tirx.is_scheduled`` and carries ``dlc.schedule`` = its origin
(``user:<rule>``, ``tuned``, ``hand:<rule>``, ``fallback:<rule>``). ``KernelReport`` rows say the same for
``--explain``, the artifact metadata and the profiler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import tvm
import tvm_ffi
from tvm import s_tir, tirx
from tvm.target import Target

from ..errors import CompileError
from .registry import ORIGINS, REGISTRY, Rule, load_builtin_rules
from .utils import NotMine

log = logging.getLogger("dlc.schedule")

# A tuned-record lookup: (func, target) -> Schedule or None. dlc.tune provides one over its database.
TunedLookup = Callable[[tirx.PrimFunc, Target], "s_tir.Schedule | None"]


@dataclass
class KernelReport:
    name: str
    blocks: str  # the compute blocks left after inlining, e.g. "conv2d_nchw" or "T_softmax_maxelem+..."
    shapes: list[list[int | str]]  # buffer shapes of the kernel's parameters
    origin: str  # user:<rule> | tuned | hand:<rule> | fallback:<rule> | empty-loop | none
    gflop: float
    rejected: list[str] = field(default_factory=list)  # rules that raised on this kernel (a bug to fix)

    def to_json(self) -> dict:
        return asdict(self)


def _shapes(func: tirx.PrimFunc) -> list[list[int | str]]:
    out = []
    for p in func.params:  # in TVM 0.27 a buffer parameter is a Var with a BufferType: it has .shape
        shape = getattr(p.ty, "shape", None)
        if shape is not None:
            out.append([int(d) if isinstance(d, tirx.IntImm) else str(d) for d in shape])
    return out


def _compute_blocks(func: tirx.PrimFunc) -> list[str]:
    names: list[str] = []

    def visit(block: s_tir.SBlock) -> None:
        if block.name_hint != "root":
            names.append(block.name_hint)

    tvm_ffi.structural_walk(func.body, [(s_tir.SBlock, visit)], order="pre")
    return names


def _gflop(func: tirx.PrimFunc) -> float:
    try:
        return float(s_tir.analysis.estimate_tir_flops(tvm.IRModule({"main": func}))) / 1e9
    except Exception:  # symbolic extents: unknown
        return 0.0


def _has_empty_loop(func: tirx.PrimFunc) -> bool:
    """A loop of extent 0 (a slice of nothing, as fuzzers and some exporters make): the rules' splits and fuses
    divide by its extent, so they are not tried; the kernel keeps its plain loops (at most the other operands
    of a concat or an add to walk, once)."""
    empty = []

    def visit(loop):
        if isinstance(loop.extent, tirx.IntImm) and loop.extent.value == 0:
            empty.append(loop)

    tvm_ffi.structural_walk(func.body, [(tirx.For, visit)], order="pre")
    return bool(empty)


def _try(rule: Rule, func: tirx.PrimFunc, target: Target, report: KernelReport) -> s_tir.Schedule | None:
    try:
        return rule(func, target)
    except NotMine:
        return None
    except Exception as e:
        if rule.origin == "user":  # the user's own code: tell them, do not hide it behind another rule
            raise CompileError(f"user schedule rule {rule.name!r} failed on kernel {report.name!r}: "
                               f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
        log.warning("rule %s failed on %s: %s", rule.label, report.name, e)
        report.rejected.append(rule.label)
        return None


def untuned_schedule(func: tirx.PrimFunc, target: Target) -> tuple[str, s_tir.Schedule] | None:
    """(label, schedule) of the first rule that answers in user > hand > fallback order: what a kernel gets
    when no tuned record applies. ``dlc tune`` measures it as the baseline a record has to beat."""
    kind = target.kind.name
    load_builtin_rules(kind)
    report = KernelReport("baseline", "", [], "none", 0.0)
    for origin in ORIGINS:
        for r in REGISTRY.rules(kind, origin):
            sch = _try(r, func, target, report)
            if sch is not None:
                return r.label, sch
    return None


def schedule_func(func: tirx.PrimFunc, name: str, target: Target, tuned: TunedLookup | None
                  ) -> tuple[tirx.PrimFunc, KernelReport]:
    kind = target.kind.name
    load_builtin_rules(kind)
    report = KernelReport(name, "+".join(_compute_blocks(func)), _shapes(func), "none", _gflop(func))
    if kind == "llvm" and _has_empty_loop(func):
        report.origin = "empty-loop"
        return func, report
    candidates: list[tuple[str, Callable[[], s_tir.Schedule | None]]] = []
    for r in REGISTRY.rules(kind, "user"):
        candidates.append((r.label, lambda r=r: _try(r, func, target, report)))
    if tuned is not None:
        candidates.append(("tuned", lambda: tuned(func, target)))
    for origin in ("hand", "fallback"):
        for r in REGISTRY.rules(kind, origin):
            candidates.append((r.label, lambda r=r: _try(r, func, target, report)))
    for label, attempt in candidates:
        sch = attempt()
        if sch is not None:
            report.origin = label
            scheduled = sch.mod["main"].with_attr("tirx.is_scheduled", True).with_attr("dlc.schedule", label)
            if "global_symbol" in func.attrs:
                scheduled = scheduled.with_attr("global_symbol", func.attrs["global_symbol"])
            return scheduled, report
    return func, report


def schedule_module(mod: tvm.IRModule, target: Target, tuned: TunedLookup | None = None
                    ) -> tuple[tvm.IRModule, list[KernelReport]]:
    """Schedule every not-yet-scheduled PrimFunc in ``mod``; return the module and one report per kernel."""
    reports = []
    updates = {}
    for gv, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        if func.attrs is not None and func.attrs.get("tirx.is_scheduled", False):
            origin = str(func.attrs.get("dlc.schedule", "pre-scheduled"))
            reports.append(KernelReport(gv.name_hint, "+".join(_compute_blocks(func)), _shapes(func), origin,
                                        _gflop(func)))
            continue
        updates[gv], report = schedule_func(func, gv.name_hint, target, tuned)
        reports.append(report)
    for gv, func in updates.items():
        mod[gv] = func
    return mod, sorted(reports, key=lambda r: r.name)
