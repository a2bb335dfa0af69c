"""ONNX graph -> Relax IRModule, with input shapes from the model or the user, and errors that name nodes.

This is TVM's ``ONNXGraphImporter`` with three changes: it converts with dlc's converter registry
(``converters.py``), it lists *every* unsupported op with its node names before converting anything, and a
converter failure becomes a ``ModelError`` naming the node instead of a stack trace.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx.onnx_frontend import ONNXGraphImporter

from ..errors import DlcError, InputError, ModelError, UnsupportedOpError
from ..signature import Dim, Signature, TensorSpec
from .converters import convert_map, is_supported
from .loader import LoadedModel


@dataclass
class ImportedModel:
    mod: tvm.IRModule
    signature: Signature


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of a graph, including those inside If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_nodes(g)


def node_label(node: onnx.NodeProto, index: int | None = None) -> str:
    return node.name or (f"#{index} {node.op_type}" if index is not None else f"<unnamed {node.op_type}>")


def unsupported_ops(proto: onnx.ModelProto) -> dict[str, list[str]]:
    """op type -> names of the nodes using it, for every op dlc cannot import."""
    found: dict[str, list[str]] = {}
    for i, node in enumerate(iter_nodes(proto.graph)):
        if not is_supported(node.op_type):
            found.setdefault(node.op_type, []).append(node_label(node, i))
    return found


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph's real inputs: those not backed by an initializer."""
    inits = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in inits]


def _elem_dtype(value: onnx.ValueInfoProto, where: str) -> str:
    if not value.type.HasField("tensor_type"):
        kind = value.type.WhichOneof("value") or "unknown"
        raise ModelError(f"input/output {value.name!r} is a {kind}, dlc only takes tensors", where=where)
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
    except (KeyError, ValueError):
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
    return [d if isinstance(d, int) else sym.setdefault(d, tvm.tirx.Var(d, "int64")) for d in shape]


def _spec_from_type(name: str, ty) -> TensorSpec:
    if ty.shape is None or not isinstance(ty.shape, relax.ShapeExpr):  # rank or dims only known at run time
        dims = tuple(f"{name}_dim{i}" for i in range(max(ty.ndim, 0)))
    else:
        dims = tuple(int(d) if isinstance(d, tvm.tirx.IntImm) else str(d) for d in ty.shape.values)
    return TensorSpec(name, dims, str(ty.dtype))


class _Importer(ONNXGraphImporter):
    """TVM's importer, converting through dlc's registry and naming the node that fails."""

    def _check_for_unsupported_ops(self, graph):  # done by import_onnx, with node names
        pass

    def _sanitize_name(self, name: str) -> str:
        # TVM only replaces "."; names like "gpu_0/data_0" then reach CUDA C as parameter names and nvcc
        # fails. Any character that is not valid in an identifier becomes "_".
        return super()._sanitize_name(re.sub(r"\W", "_", name) if name else name)

    def _convert_operator(self, op_name, inputs, attrs, opset):
        node = attrs.get("tvm_custom", {}).get("name") or "<unnamed>"
        try:
            converter = convert_map()[op_name].get_converter(opset)
            sym = converter(self.bb, inputs, attrs, [self._nodes, self._params])
            return self.bb.normalize(sym) if isinstance(sym, relax.Expr) else sym
        except DlcError:
            raise
        except Exception as e:  # a converter's assert/ValueError/TVMError: name the node, keep the cause
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelError(f"cannot import node {node!r} ({op_name}, opset {opset}): {first}") from e


def import_onnx(loaded: LoadedModel, input_shapes: Mapping[str, Sequence[Dim]] | None = None) -> ImportedModel:
    """Convert a validated model to a Relax module whose ``main`` takes the graph inputs in order."""
    proto = loaded.proto
    missing = unsupported_ops(proto)
    if missing:
        raise UnsupportedOpError(missing, where=loaded.source)
    inputs = resolve_input_specs(loaded, input_shapes)
    sym: dict[str, tvm.tirx.Var] = {}
    importer = _Importer(
        shape_dict={t.name: _relax_shape(t.shape, sym) for t in inputs},
        dtype_dict={t.name: t.dtype for t in inputs},
    )
    # TVM's importer prints to stdout and warns about renamed inputs; dlc reports errors itself.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            mod = importer.from_onnx(proto.graph, loaded.opset)
        except ModelError as e:
            raise ModelError(e.message, where=loaded.source) from e.__cause__
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelError(f"cannot import graph: {first}", where=loaded.source) from e
    main = mod["main"]
    ret = main.ret_ty
    out_types = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    out_names = [o.name for o in proto.graph.output]
    if len(out_types) != len(out_names) or not all(isinstance(t, relax.TensorType) for t in out_types):
        raise ModelError(f"graph outputs {out_names} did not import as {len(out_names)} tensors", where=loaded.source)
    outputs = [_spec_from_type(n, t) for n, t in zip(out_names, out_types)]
    return ImportedModel(mod, Signature(tuple(inputs), tuple(outputs)))
