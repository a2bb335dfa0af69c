"""Read an ONNX model from disk (or take a ModelProto) and refuse anything malformed, up front.

What is checked, in order, each failure a one-line ``ModelError`` naming the file:

1. the file exists, is a regular file and is not empty;
2. it parses as an ONNX ModelProto with a graph (protobuf accepts many garbage byte strings as an empty
   message, so "parsed" alone proves nothing);
3. every external-data reference stays inside the model's folder (no absolute paths, no ``..``, no
   symlink leading out) and fits inside the file it names (CVE-2024-5187 was such a traversal);
4. the default-domain opset is one this onnx release knows;
5. ``onnx.checker`` passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ..errors import ModelError

# Oldest default-domain opset whose operators TVM's importer implements (older ones have no converter).
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()


@dataclass
class LoadedModel:
    """A validated ONNX model and where it came from (for messages and external data)."""

    proto: onnx.ModelProto
    source: str  # file path, or "<ModelProto>" for in-memory models
    base_dir: Path | None  # folder external data is resolved against

    @property
    def opset(self) -> int:
        return default_opset(self.proto)


def default_opset(proto: onnx.ModelProto) -> int:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1  # ONNX: a model without a default-domain import means opset 1


def load_model(model: str | os.PathLike | onnx.ModelProto, *, check: bool = True) -> LoadedModel:
    """Load and validate a model given as a path or a ``ModelProto``."""
    if isinstance(model, onnx.ModelProto):
        loaded = LoadedModel(model, "<ModelProto>", None)
        if _external_tensors(model):
            raise ModelError("model has external data; pass the .onnx path so dlc can check where it points",
                             where=loaded.source)
    elif isinstance(model, (str, os.PathLike)):
        loaded = _read_file(Path(model))
    else:
        raise ModelError(f"expected a path or an onnx.ModelProto, got {type(model).__name__}")
    _check_opset(loaded)
    if check:
        _run_checker(loaded)
    return loaded


def _read_file(path: Path) -> LoadedModel:
    where = str(path)
    if not path.exists():
        raise ModelError("no such file", where=where)
    if not path.is_file():
        raise ModelError("not a regular file", where=where)
    data = path.read_bytes()
    if not data:
        raise ModelError("file is empty", where=where)
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise ModelError("not an ONNX model (protobuf parse failed); truncated or another format?",
                         where=where) from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not (proto.graph.node or proto.graph.output):
        raise ModelError("not an ONNX model (no ir_version or no graph); truncated or another format?", where=where)
    loaded = LoadedModel(proto, where, path.resolve().parent)
    if _external_tensors(proto):
        _check_external_data(loaded)
        external_data_helper.load_external_data_for_model(proto, str(loaded.base_dir))
    return loaded


def _external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in external_data_helper._get_all_tensors(proto) if external_data_helper.uses_external_data(t)]


def _check_external_data(loaded: LoadedModel) -> None:
    base = loaded.base_dir
    assert base is not None
    for tensor in _external_tensors(loaded.proto):
        info = external_data_helper.ExternalDataInfo(tensor)
        loc = info.location
        what = f"external data of tensor {tensor.name!r} ({loc!r})"
        if not loc or os.path.isabs(loc) or Path(loc).drive or ".." in Path(loc).parts:
            raise ModelError(f"{what} must be a relative path inside the model's folder", where=loaded.source)
        target = (base / loc).resolve()  # resolves symlinks
        if base != target and base not in target.parents:
            raise ModelError(f"{what} leaves the model's folder (through a symlink?)", where=loaded.source)
        if not target.is_file():
            raise ModelError(f"{what} does not exist", where=loaded.source)
        size = target.stat().st_size
        offset = int(info.offset or 0)
        length = int(info.length) if info.length is not None else size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise ModelError(f"{what} asks for bytes {offset}..{offset + length} of a {size}-byte file",
                             where=loaded.source)


def _check_opset(loaded: LoadedModel) -> None:
    opset = loaded.opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"default-domain opset {opset} is not supported (dlc handles {MIN_OPSET}..{MAX_OPSET})",
                         where=loaded.source)


def _run_checker(loaded: LoadedModel) -> None:
    try:
        onnx.checker.check_model(loaded.proto)
    except onnx.checker.ValidationError as e:
        # The checker's message is several lines; the first names the node and the problem.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        node = next((ln for ln in lines if ln.startswith("==> Context:")), "")
        msg = lines[0] if lines else "invalid model"
        raise ModelError(f"ONNX checker: {msg}{' (' + node[len('==> Context: '):] + ')' if node else ''}",
                         where=loaded.source) from None
