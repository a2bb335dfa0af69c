"""The errors dlc raises at users.

Every error carries one line that names what is wrong and where (file, node, input); the CLI prints
``str(err)`` and exits with ``err.exit_code``. Anything else that escapes is a dlc bug, reported as an
internal error (``--verbose`` shows the traceback).
"""

from __future__ import annotations


class DlcError(Exception):
    """Base of all user-facing dlc errors."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ModelError(DlcError):
    """The model file is missing, unreadable, malformed or fails ONNX's checker."""

    exit_code = 2


class UnsupportedOpError(ModelError):
    """The model uses operators that dlc cannot import. ``ops`` maps op type -> node names."""

    def __init__(self, ops: dict[str, list[str]], *, where: str | None = None):
        self.ops = ops
        parts = []
        for op_type, nodes in sorted(ops.items()):
            shown = ", ".join(repr(n) for n in nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
            parts.append(f"{op_type} (nodes {shown})")
        super().__init__(f"unsupported operators: {'; '.join(parts)}", where=where)


class TargetError(DlcError):
    """The target string or dict is not one dlc can compile for."""

    exit_code = 2


class InputError(DlcError):
    """A run-time input (name, shape, dtype or file) does not match the model."""

    exit_code = 2


class ArtifactError(DlcError):
    """A file is not a dlc artifact, or was built for another target or dlc/TVM version."""

    exit_code = 2


class CompileError(DlcError):
    """Compilation failed inside TVM for a reason that is not the user's input."""

    exit_code = 3


class DeviceError(DlcError):
    """The device a model was compiled for is not present (e.g. no CUDA GPU), or too old for the code."""

    exit_code = 4


class TuneError(DlcError):
    """Tuning could not run (database, RPC tracker, timeout)."""

    exit_code = 3
