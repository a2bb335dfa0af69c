"""Graph rewrites, by name: TVM's standard Relax passes and dlc's own (one module each in this package).

``PASSES`` maps a name (what ``--disable-pass`` and ``--list-passes`` use) to a ``PassSpec``; the pipeline
(``dlc/pipeline.py``) says which run, in which phase, for which target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tvm
from tvm import relax


@dataclass(frozen=True)
class PassSpec:
    name: str
    doc: str  # one line: what it rewrites into what
    make: Callable[..., tvm.transform.Pass]  # (target, options: CompileOptions | None) -> Pass
    required: bool = False  # the build cannot work without it: refuse --disable-pass


PASSES: dict[str, PassSpec] = {}


def register_pass(name: str, doc: str, *, required: bool = False):
    """Decorator for ``make(target, options) -> Pass`` factories (options: the CompileOptions, or None)."""

    def wrap(make: Callable[..., tvm.transform.Pass]):
        PASSES[name] = PassSpec(name, doc, make, required)
        return make

    return wrap


def _tvm(name: str, doc: str, make: Callable[[], tvm.transform.Pass], required: bool = False) -> None:
    PASSES[name] = PassSpec(name, doc, lambda _target, _options=None: make(), required)


_tvm("decompose-inference", "batch_norm/layer_norm/... -> elementwise arithmetic with inference statistics (TVM)",
     relax.transform.DecomposeOpsForInference)
_tvm("canonicalize", "drop trivial bindings and Tuple/TupleGetItem pairs, so fusion sees through them (TVM)",
     relax.transform.CanonicalizeBindings)
_tvm("fold-constant", "evaluate ops whose inputs are all constants at compile time (TVM)",
     relax.transform.FoldConstant)
_tvm("dce", "remove bindings and functions nothing uses (TVM)", relax.transform.DeadCodeElimination)
_tvm("dispatch-sort-scan", "sort/argsort/topk/cumsum/cumprod -> TOPI kernels for the target, before legalize "
     "(TVM)", relax.backend.DispatchSortScan, required=True)
_tvm("dispatch-sampling", "multinomial sampling -> TOPI kernels, before legalize (TVM)", relax.backend.DispatchSampling,
     required=True)
_tvm("annotate-op-pattern", "tag PrimFuncs injective/reduction/out-ewise-fusable for fusion (TVM)",
     relax.transform.AnnotateTIROpPattern, required=True)
_tvm("fuse-ops", "group producer/consumer call_tirs into fused functions by op pattern (TVM)",
     relax.transform.FuseOps)
_tvm("fuse-tir", "turn each fused group into one PrimFunc, one kernel (TVM)", relax.transform.FuseTIR)
_tvm("cse", "merge identical pure bindings, e.g. two layout_transforms of one tensor (TVM)",
     relax.transform.EliminateCommonSubexpr)

# dlc's own passes register themselves on import.
from . import (  # noqa: E402, F401
    fast_math,
    fold_affine,
    fold_layout_transforms,
    layout_grouped,
    layout_nchwc,
    legalize,
    pad_channels,
    power_to_sqrt,
    remove_dropout,
    reuse_layout_copies,
    sum_to_add,
    winograd,
)
