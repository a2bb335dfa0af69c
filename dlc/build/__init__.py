"""Build: scheduled Relax module -> executable (tvm.compile), and for cuda the device code through nvcc."""

from __future__ import annotations

from dataclasses import dataclass, field

import tvm

from ..errors import CompileError
from ..runtime.artifact import BlobPatch
from ..target import is_cuda
from .cuda import DeviceBinary, compile_device_code, swap_cuda_code


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
        executable = tvm.compile(mod, target=target, relax_pipeline=None)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CompileError(f"code generation failed: {first}") from e
    binaries = compile_device_code(executable, target) if is_cuda(target) else []
    return BuildResult(executable, binaries)
