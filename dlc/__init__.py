"""dlc: compile ONNX models to native code for x86 CPUs and NVIDIA GPUs, on Apache TVM (Relax + TensorIR)."""

from .api import compile, load
from .errors import (
    ArtifactError,
    CompileError,
    DlcError,
    InputError,
    ModelError,
    TargetError,
    TuneError,
    UnsupportedOpError,
)
from .options import CompileOptions
from .runtime import CompiledModel
from .version import __version__

__all__ = [
    "ArtifactError", "CompileError", "CompileOptions", "CompiledModel", "DlcError", "InputError", "ModelError",
    "TargetError", "TuneError", "UnsupportedOpError", "__version__", "compile", "load",
]
