"""Read an ONNX model from disk (or take a ModelProto) and refuse anything malformed, up front.

What is checked, in order, each failure a one-line ``ModelError`` naming the file:

1. the file exists, is a regular file, is readable, is not empty and is not larger than protobuf allows;
2. it parses as an ONNX ModelProto with a graph (protobuf accepts many garbage byte strings as an empty
   message, so "parsed" alone proves nothing), whose names are valid UTF-8 (protobuf hands out a
   malformed string field as ``bytes``, which nothing downstream expects);
3. every external-data reference — in initializers, sparse initializers, Constant-node and other attribute
   tensors, subgraphs and model-local functions — is well-formed (one location, decimal offset and length),
   stays inside the model's folder (no absolute paths, no ``..``, no symlink leading out: CVE-2024-5187 was
   such a traversal), names a regular file, fits inside it, and holds exactly the bytes its tensor's type
   and shape need; and all of it together fits in memory. dlc then reads the bytes itself, from the file
   it checked (the descriptor it opened, not the path again);
4. the default-domain opset is one this onnx release knows;
5. (``check=True``) no tensor declares a shape larger than memory (a 2^40-element initializer is refused
   here, not by the checker's complaint that its data is short), and ``onnx.checker`` passes.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto

from ..errors import ModelError
from .limits import PROTOBUF_LIMIT, human_bytes, tensor_bytes, too_large

# Oldest default-domain opset whose operators TVM's importer implements (older ones have no converter).
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()
_EXTERNAL_KEYS = ("location", "offset", "length", "checksum", "basepath")  # what the ONNX spec defines


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
        if external_tensors(model):
            raise ModelError("model has external data; pass the .onnx path so dlc can check where it points",
                             where=loaded.source)
    elif isinstance(model, (str, os.PathLike)):
        loaded = _read_file(Path(model))
    else:
        raise ModelError(f"expected a path or an onnx.ModelProto, got {type(model).__name__}")
    _check_opset(loaded)
    if check:
        _check_tensor_sizes(loaded)
        _run_checker(loaded)
    return loaded


def _read_file(path: Path) -> LoadedModel:
    where = str(path)
    try:
        if not path.exists():
            raise ModelError("no such file", where=where)
        if not path.is_file():
            raise ModelError("not a regular file", where=where)
        size = path.stat().st_size
        if size == 0:
            raise ModelError("file is empty", where=where)
        if size > PROTOBUF_LIMIT:
            raise ModelError(f"file is {human_bytes(size)}, more than a protobuf message can hold (2 GiB); "
                             "models this large keep their weights in external data files", where=where)
        data = path.read_bytes()
    except (OSError, ValueError) as e:  # permissions, a path with a NUL byte, a name too long
        raise ModelError(f"cannot read the file: {getattr(e, 'strerror', None) or e}", where=where) from None
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise ModelError("not an ONNX model (protobuf parse failed); truncated or another format?",
                         where=where) from None
    if proto.ir_version <= 0 or not proto.HasField("graph") or not (proto.graph.node or proto.graph.output):
        raise ModelError("not an ONNX model (no ir_version or no graph); truncated or another format?", where=where)
    if bad := _non_utf8_name(proto):
        raise ModelError(f"not an ONNX model: {bad} is not valid UTF-8", where=where)
    loaded = LoadedModel(proto, where, path.resolve().parent)
    external = external_tensors(proto)
    if external:
        load_external_data(external, loaded.base_dir, where)
    return loaded


def _non_utf8_name(proto: onnx.ModelProto) -> str | None:
    """What first holds a string that is not UTF-8 (protobuf returns such a string field as bytes)."""

    def graph(g: onnx.GraphProto, where: str) -> str | None:
        if isinstance(g.name, bytes):
            return f"the name of {where}"
        for kind, values in (("input", g.input), ("output", g.output), ("value_info", g.value_info),
                             ("initializer", g.initializer)):
            for i, v in enumerate(values):
                if isinstance(v.name, bytes):
                    return f"{where} {kind} #{i}'s name"
        for i, n in enumerate(g.node):
            texts = [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
            if any(isinstance(t, bytes) for t in texts):
                return f"a name in node #{i} of {where}"
            for a in n.attribute:
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    if bad := graph(sub, f"a subgraph of node #{i}"):
                        return bad
        return None

    for i, imp in enumerate(proto.opset_import):
        if isinstance(imp.domain, bytes):
            return f"opset import #{i}'s domain"
    return graph(proto.graph, "the graph")


# ---- external data ----------------------------------------------------------------------------------------
def all_tensors(proto: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every TensorProto of a model: initializers (dense and sparse) and attribute tensors, in every
    subgraph and model-local function. (onnx's own walker skips sparse tensors.)"""

    def sparse(sp: onnx.SparseTensorProto) -> Iterator[TensorProto]:
        yield sp.values
        yield sp.indices

    def nodes(node_list) -> Iterator[TensorProto]:
        for node in node_list:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("sparse_tensor"):
                    yield from sparse(a.sparse_tensor)
                for sp in a.sparse_tensors:
                    yield from sparse(sp)
                if a.HasField("g"):
                    yield from graph(a.g)
                for g in a.graphs:
                    yield from graph(g)

    def graph(g: onnx.GraphProto) -> Iterator[TensorProto]:
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield from sparse(sp)
        yield from nodes(g.node)

    yield from graph(proto.graph)
    for f in proto.functions:
        yield from nodes(f.node)


def external_tensors(proto: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in all_tensors(proto) if t.HasField("data_location") and t.data_location == TensorProto.EXTERNAL]


@dataclass
class _ExternalRef:
    tensor: TensorProto
    location: str
    offset: int
    length: int | None
    what: str  # "external data of tensor 'w' ('w.bin')", for messages


def _parse_ref(tensor: TensorProto, where: str) -> _ExternalRef:
    entries: dict[str, str] = {}
    for e in tensor.external_data:
        if e.key in entries and e.key in ("location", "offset", "length"):
            raise ModelError(f"external data of tensor {tensor.name!r} gives {e.key!r} twice", where=where)
        if e.key in _EXTERNAL_KEYS:
            entries[e.key] = e.value
    location = entries.get("location", "")
    what = f"external data of tensor {tensor.name!r} ({location[:200]!r})"
    numbers = {}
    for key in ("offset", "length"):
        text = entries.get(key)
        if text is None:
            continue
        if not re.fullmatch(r"[0-9]{1,20}", text):
            raise ModelError(f"{what}: {key} {text[:40]!r} is not a non-negative integer", where=where)
        numbers[key] = int(text)
    return _ExternalRef(tensor, location, numbers.get("offset", 0), numbers.get("length"), what)


def _open_inside(base: Path, ref: _ExternalRef, where: str) -> int:
    """Open ``ref.location`` read-only, refusing anything that is not a regular file inside ``base``."""
    loc = ref.location
    if not loc or "\0" in loc or os.path.isabs(loc) or Path(loc).drive or ".." in Path(loc).parts:
        raise ModelError(f"{ref.what} must be a relative path inside the model's folder", where=where)
    try:
        target = (base / loc).resolve()  # resolves symlinks
        if base != target and base not in target.parents:
            raise ModelError(f"{ref.what} leaves the model's folder (through a symlink?)", where=where)
        if not target.is_file():
            raise ModelError(f"{ref.what} does not exist or is not a regular file", where=where)
        # O_NONBLOCK: if the file was swapped for a FIFO since, opening it must not wait for a writer.
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise ModelError(f"{ref.what} cannot be opened: {e.strerror or e}", where=where) from None
    # Check what was opened, not what the path meant a moment ago (a symlink may have been swapped in).
    real = Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.exists(f"/proc/self/fd/{fd}") else target
    if not stat.S_ISREG(os.fstat(fd).st_mode) or (base != real and base not in real.parents):
        os.close(fd)
        raise ModelError(f"{ref.what} leaves the model's folder or is not a regular file", where=where)
    return fd


def _pread_exactly(fd: int, length: int, offset: int) -> bytes:
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 1 << 30), offset + done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def load_external_data(tensors: list[TensorProto], base: Path, where: str) -> None:
    """Check every reference first, then read the bytes into the tensors (which stop being external)."""
    refs = [_parse_ref(t, where) for t in tensors]
    total = 0
    for ref in refs:
        expected = tensor_bytes(ref.tensor.data_type, ref.tensor.dims)
        if expected is None:
            raise ModelError(f"{ref.what}: a tensor of data type {ref.tensor.data_type} cannot be stored externally "
                             "(its size is not fixed by its shape)", where=where)
        if reason := too_large(expected):
            raise ModelError(f"tensor {ref.tensor.name!r} of shape {tuple(ref.tensor.dims)} {reason}", where=where)
        total += expected
    if reason := too_large(total):
        raise ModelError(f"the external data of this model {reason}", where=where)
    for ref in refs:
        fd = _open_inside(base, ref, where)
        try:
            size = os.fstat(fd).st_size
            length = ref.length if ref.length is not None else size - ref.offset
            if ref.offset + length > size or length < 0:
                raise ModelError(f"{ref.what} asks for bytes {ref.offset}..{ref.offset + max(length, 0)} of a "
                                 f"{size}-byte file", where=where)
            expected = tensor_bytes(ref.tensor.data_type, ref.tensor.dims)
            if length != expected:
                raise ModelError(f"{ref.what} is {length} bytes, but a tensor of shape {tuple(ref.tensor.dims)} "
                                 f"and data type {ref.tensor.data_type} takes {expected}", where=where)
            data = _pread_exactly(fd, length, ref.offset)
        finally:
            os.close(fd)
        if len(data) != length:  # the file shrank since fstat
            raise ModelError(f"{ref.what}: the file ended early", where=where)
        t = ref.tensor
        t.raw_data = data
        del t.external_data[:]
        t.data_location = TensorProto.DEFAULT


# ---- checks on the parsed model ---------------------------------------------------------------------------
def _check_opset(loaded: LoadedModel) -> None:
    opset = loaded.opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(f"default-domain opset {opset} is not supported (dlc handles {MIN_OPSET}..{MAX_OPSET})",
                         where=loaded.source)


def _check_tensor_sizes(loaded: LoadedModel) -> None:
    for t in all_tensors(loaded.proto):
        size = tensor_bytes(t.data_type, t.dims)
        if size is not None and (reason := too_large(size)):
            raise ModelError(f"tensor {t.name!r} of shape {tuple(t.dims)} {reason}", where=loaded.source)


def _run_checker(loaded: LoadedModel) -> None:
    proto = loaded.proto
    try:
        if proto.ByteSize() <= PROTOBUF_LIMIT:
            onnx.checker.check_model(proto)
        elif loaded.base_dir is not None:  # external data made it too big to pass in memory: check the file
            onnx.checker.check_model(loaded.source)
        else:
            raise ModelError("model is larger than 2 GiB; save it with external data and pass the .onnx path",
                             where=loaded.source)
    except onnx.checker.ValidationError as e:
        # The checker's message is several lines; the first names the node and the problem.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        node = next((ln for ln in lines if ln.startswith("==> Context:")), "")
        msg = lines[0] if lines else "invalid model"
        raise ModelError(f"ONNX checker: {msg}{' (' + node[len('==> Context: '):] + ')' if node else ''}",
                         where=loaded.source) from None
    except (ValueError, RuntimeError, UnicodeError) as e:  # the checker's other ways of saying no
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"ONNX checker: {first}", where=loaded.source) from None
