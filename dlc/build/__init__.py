"""Build: scheduled Relax module -> executable (tvm.compile), and for cuda the device code through nvcc.

For llvm the TIR is lowered by ``dlc-llvm``: TVM's default (s_tir) TIR pipeline followed by dlc's own lowering
passes (``gather_runs``). Everything that builds a kernel -- ``dlc compile`` and the tuner's candidates --
lowers it through ``tir_pipeline(target)``, so that what is tuned is what ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tvm
from tvm.tirx import compilation_pipeline

from ..errors import CompileError
from ..runtime.artifact import BlobPatch
from ..target import is_cuda
from .cuda import DeviceBinary, compile_device_code, swap_cuda_code
from .gather_runs import GatherRuns


def _llvm_tir_pipeline():
    lower, finalize_host, finalize_device = compilation_pipeline.get_tir_pipeline("s_tir")
    return tvm.transform.Sequential([lower, GatherRuns]), finalize_host, finalize_device


compilation_pipeline.register_tir_pipeline("dlc-llvm", _llvm_tir_pipeline)


def tir_pipeline(target: tvm.target.Target) -> str:
    """The name of the TIR lowering pipeline for ``target`` (``tvm.compile(..., tir_pipeline=...)``)."""
    return "dlc-llvm" if target.kind.name == "llvm" else "default"


@dataclass
class BuildResult:
    executable: tvm.runtime.Executable
    device_binaries: list[DeviceBinary] = field(default_factory=list)

    @property
    def blob_patch(self) -> BlobPatch | None:
        if not self.device_binaries:
            return None
        binaries = self.device_binaries
        return lambda blob: swap_cuda_code(blob, binaries)


def build(mod: tvm.IRModule, target: tvm.target.Target) -> BuildResult:
    """Generate code for a module whose Relax part is already lowered (the pipeline's last phase)."""
    try:
        # relax_pipeline=None: dlc's pipeline already ran every Relax pass; only TIR lowering + codegen remain.
        executable = tvm.compile(mod, target=target, relax_pipeline=None, tir_pipeline=tir_pipeline(target))
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CompileError(f"code generation failed: {first}") from e
    binaries = compile_device_code(executable, target) if is_cuda(target) else []
    return BuildResult(executable, binaries)
