"""ONNX model -> Relax IRModule, with input shapes from the model or the user, and errors that name nodes.

``import_onnx`` lists *every* unsupported op with its node names before converting anything, inlines ONNX
functions dlc has no converter for (``functions.py``), converts the graph with ``GraphImporter`` (``graph.py``:
dlc's converter registry over TVM's, import-time folding, symbolic shape values), and turns a converter
failure into a ``ModelError`` naming the node instead of a stack trace.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx
import tvm
from tvm import relax

from .._native import quiet_tvm_logs
from ..errors import DlcError, InputError, ModelError, UnsupportedOpError
from ..signature import Dim, Signature, TensorSpec, carrier_dtype
from .converters import is_supported, normalize_domain
from .functions import inline_local_functions
from .graph import GraphImporter
from .loader import LoadedModel
from .proto import graph_inputs, iter_nodes, node_label, opset_imports
from .validate import validate_for_import

__all__ = ["ImportedModel", "graph_inputs", "import_onnx", "iter_nodes", "node_label", "resolve_input_specs",
           "unsupported_ops"]


@dataclass
class ImportedModel:
    mod: tvm.IRModule
    signature: Signature


def unsupported_ops(proto: onnx.ModelProto) -> dict[str, list[str]]:
    """op type -> names of the nodes using it, for every op dlc cannot import."""
    opsets = opset_imports(proto)
    found: dict[str, list[str]] = {}
    for i, node in enumerate(iter_nodes(proto.graph)):
        domain = normalize_domain(node.domain)
        if not is_supported(node.op_type, domain, opsets.get(domain, 1)):
            found.setdefault(node.op_type, []).append(node_label(node, i))
    return found


def _elem_dtype(value: onnx.ValueInfoProto, where: str) -> str:
    if not value.type.HasField("tensor_type"):
        kind = value.type.WhichOneof("value") or "unknown"
        raise ModelError(f"input/output {value.name!r} is a {kind}, dlc only takes tensors", where=where)
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
    except (KeyError, ValueError, TypeError):
        raise ModelError(f"{value.name!r} has unknown element type {value.type.tensor_type.elem_type}",
                         where=where) from None


def _declared_shape(value: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    tt = value.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[Dim] = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or f"{value.name}_dim{i}")
    return tuple(dims)


def resolve_input_specs(loaded: LoadedModel, overrides: Mapping[str, Sequence[Dim]] | None) -> list[TensorSpec]:
    """Input specs from the model, with the user's ``--input-shape`` overrides applied and checked."""
    overrides = dict(overrides or {})
    values = graph_inputs(loaded.proto)
    names = [v.name for v in values]
    for name in overrides:
        if name not in names:
            raise InputError(f"--input-shape names {name!r}, but the model's inputs are {names}",
                             where=loaded.source)
    specs = []
    for v in values:
        declared = _declared_shape(v)
        shape = overrides.get(v.name)
        if shape is None:
            if declared is None:
                raise InputError(f"input {v.name!r} has no declared shape; give one with --input-shape "
                                 f"{v.name}=d0,d1,...", where=loaded.source)
            shape = declared
        else:
            shape = tuple(shape)
            if declared is not None and len(declared) != len(shape):
                raise InputError(f"--input-shape {v.name}: rank {len(shape)} but the model declares "
                                 f"{len(declared)} dims {declared}", where=loaded.source)
            for d in shape:
                if isinstance(d, int) and d < 0:
                    raise InputError(f"--input-shape {v.name}: negative dim {d}", where=loaded.source)
        specs.append(TensorSpec(v.name, tuple(shape), _elem_dtype(v, loaded.source)))
    return specs


def _relax_shape(shape: Sequence[Dim], sym: dict[str, tvm.tirx.Var]) -> list:
    return [d if isinstance(d, int) else sym.setdefault(d, tvm.tirx.Var(_identifier(d), "int64")) for d in shape]


def _identifier(name: str) -> str:
    name = re.sub(r"\W", "_", name)
    return name if name and not name[0].isdigit() else f"v_{name}"


def _spec_from_type(name: str, ty, dtype: str | None) -> TensorSpec:
    if ty.shape is None or not isinstance(ty.shape, relax.ShapeExpr):  # rank or dims only known at run time
        dims = tuple(f"{name}_dim{i}" for i in range(max(ty.ndim, 0)))
    else:
        dims = tuple(int(d) if isinstance(d, tvm.tirx.IntImm) else str(d) for d in ty.shape.values)
    relax_dtype = str(ty.dtype)
    if dtype is None or carrier_dtype(dtype) != relax_dtype:
        dtype = relax_dtype
    return TensorSpec(name, dims, dtype)


def _value_types(inferred: onnx.ModelProto, inlined: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Value name -> ONNX type (node output dtypes help some converters). From the bounded inference of
    validation; a model with local functions is inferred again once inlined, for the values they add."""
    types = {v.name: v.type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    if len(inlined.graph.node) != len(inferred.graph.node):  # local functions were inlined
        try:
            again = onnx.shape_inference.infer_shapes(inlined)
            types = {v.name: v.type for v in [*again.graph.value_info, *again.graph.output]} | types
        except Exception:  # a help, never a requirement
            pass
    return types


def _close_builder(bb: relax.BlockBuilder) -> None:
    """End the blocks a failed import left open: else TVM prints "BlockBuilder destroyed with remaining
    blocks!" when the builder is garbage-collected, after dlc's one-line error. (Only blocks: ending a
    scope that is not open segfaults, where ending a block that is not open raises.)"""
    for _ in range(64):
        try:
            bb._end_block()
        except Exception:
            break


def import_onnx(loaded: LoadedModel, input_shapes: Mapping[str, Sequence[Dim]] | None = None) -> ImportedModel:
    """Convert a validated model to a Relax module whose ``main`` takes the graph inputs in order."""
    proto = loaded.proto
    missing = unsupported_ops(proto)
    if missing:
        raise UnsupportedOpError(missing, where=loaded.source)
    inputs = resolve_input_specs(loaded, input_shapes)
    # dlc/frontend/validate.py: refuse what TVM would choke on, up front; inference there ran in a bounded child.
    inferred = validate_for_import(loaded, inputs)
    proto = inline_local_functions(proto)
    sym: dict[str, tvm.tirx.Var] = {}
    params = [(t.name, relax.Var(_identifier(t.name), relax.TensorType(_relax_shape(t.shape, sym),
                                                                       carrier_dtype(t.dtype))), t.dtype)
              for t in inputs]
    importer = GraphImporter(opset_imports(proto), _value_types(inferred, proto))
    # TVM's converters print to stdout and warn; dlc reports errors itself.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_tvm_logs():
        warnings.simplefilter("ignore")
        try:
            mod = importer.import_main(proto.graph, params)
        except Exception as e:  # a converter's assert/ValueError/TVMError/DlcError: name the node, keep the cause
            _close_builder(importer.bb)
            if isinstance(e, UnsupportedOpError):
                raise UnsupportedOpError(e.ops, where=loaded.source) from None
            raise ModelError(_failure(importer, e), where=loaded.source) from e
    main = mod["main"]
    ret = main.ret_ty
    out_types = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    out_names = [o.name for o in proto.graph.output]
    if len(out_types) != len(out_names) or not all(isinstance(t, relax.TensorType) for t in out_types):
        raise ModelError(f"graph outputs {out_names} did not import as {len(out_names)} tensors", where=loaded.source)
    outputs = [_spec_from_type(n, t, importer.lookup(n).dtype) for n, t in zip(out_names, out_types)]
    return ImportedModel(mod, Signature(tuple(inputs), tuple(outputs)))


def _failure(importer: GraphImporter, e: Exception) -> str:
    text = e.message if isinstance(e, DlcError) else str(e)
    first = (text.strip().splitlines() or [type(e).__name__])[0]
    node = importer.node
    if node is None:
        return f"cannot import graph: {first}"
    opset = importer.opsets.get(normalize_domain(node.domain), 1)
    return f"cannot import node {node.name or '<unnamed>'!r} ({node.op_type}, opset {opset}): {first}"
