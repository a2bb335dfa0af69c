"""ONNX graph -> Relax, node by node, folding what is known at import time.

``GraphImporter`` walks a graph in order and keeps a ``Value`` (``values.py``) for every ONNX name. Before it
asks a converter for a node it tries two cheaper things:

* **Folding.** A node whose inputs are all known arrays (initializers, Constants, shapes of static tensors,
  anything folded before) is evaluated now with onnx's reference implementation. Shape arithmetic in PyTorch
  exports and in ONNX function bodies (LayerNormalization, Attention, ...) never reaches Relax.
* **Symbolic shape values.** ``Shape(x)`` of a tensor with symbolic dims is a vector of TIR expressions, and
  Gather/Concat/Slice/Unsqueeze/arithmetic on such vectors are evaluated on those expressions: the
  ``Reshape(x, Concat(Gather(Shape(x), 0), [-1]))`` of an export becomes ``reshape(x, (N, -1))``, compiled once
  for every N.

Subgraphs (If branches, Loop and Scan bodies) are converted by the same importer in a child scope that sees
the enclosing graphs' values (``convert_subgraph``). Converters reach the importer through ``current()``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import numpy as np
import onnx
import tvm
import tvm.sym
from onnx import helper
from tvm import relax, tirx
from tvm.relax.frontend.onnx.onnx_frontend import onnx_input

from ..errors import ModelError, UnsupportedOpError
from . import symbolic
from .converters import DEFAULT, find_converter, normalize_domain
from .functions import expand_node, function_body
from .proto import iter_nodes
from .values import Known, SymArray, Value, const, np_dtype_name

_CURRENT: contextvars.ContextVar[GraphImporter] = contextvars.ContextVar("dlc_graph_importer")

# Never evaluated at import time: their outputs are random, or their reference implementation is slow.
_NO_FOLD = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "LSTM", "GRU", "RNN",
    "If", "Loop", "Scan", "SequenceMap",
})
_FOLD_MAX_ELEMENTS = 1 << 22  # inputs of a node larger than this are not folded (the reference is numpy)

# Ops whose single output is a sequence (a Relax tuple), not several outputs.
_SEQUENCE_OUTPUT_OPS = frozenset({
    "Optional", "OptionalGetElement", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SplitToSequence",
})

# Ops whose subgraphs make the function need control flow: no dataflow block around them.
CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def current() -> GraphImporter:
    """The importer converting the node whose converter is running."""
    return _CURRENT.get()


def parse_attributes(node: onnx.NodeProto) -> dict:
    """Attributes as TVM's converters expect them: repeated fields as tuples, strings as bytes."""
    out = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise ModelError(f"attribute {a.name!r} of node {node.name or node.op_type!r} refers to a function "
                             "attribute outside a function")
        v = helper.get_attribute_value(a)
        out[a.name] = tuple(v) if isinstance(v, list) else v
    return out


def has_control_flow(graph: onnx.GraphProto) -> bool:
    return any(n.op_type in CONTROL_FLOW_OPS for n in iter_nodes(graph))


class GraphImporter:
    """Converts one ONNX model's graph (and its subgraphs) into a Relax ``main``."""

    def __init__(self, opsets: dict[str, int], value_types: dict[str, onnx.TypeProto] | None = None):
        self.bb = relax.BlockBuilder()
        self.opsets = {normalize_domain(d): v for d, v in opsets.items()}
        self.value_types = value_types or {}  # ONNX types from shape inference, by value name
        self.scopes: list[dict[str, Value]] = [{}]
        self.by_expr: dict[relax.Expr, Value] = {}  # what converters can ask about an expression
        self.analyzer = tvm.sym.Analyzer()
        self.node: onnx.NodeProto | None = None  # the node being converted (for messages)

    # ---- values ---------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> Value:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise ModelError(f"value {name!r} is used before it is defined")

    def bind(self, name: str, value: Value) -> None:
        if name:
            self.scopes[-1][name] = value
        if value.expr is not None:
            self.by_expr[value.expr] = value

    def expr(self, value: Value | None) -> relax.Expr | None:
        """The Relax expression of a value, emitting known values into the graph on first use."""
        if value is None:
            return None
        if value.expr is None:
            if isinstance(value.known, np.ndarray):
                value.expr = const(value.known)
            elif isinstance(value.known, SymArray):
                value.expr = self.bb.emit(symbolic.materialize(value.known))
            else:
                raise ModelError("internal: a value with neither expression nor known contents")
            self.by_expr[value.expr] = value
        return value.expr

    def value_of(self, expr: relax.Expr | None) -> Value | None:
        return None if expr is None else self.by_expr.get(expr)

    def known(self, expr: relax.Expr | None) -> Known | None:
        v = self.value_of(expr)
        if v is not None and v.known is not None:
            return v.known
        if isinstance(expr, tvm.ir.GenericConst):
            return expr.value.numpy()
        return None

    def logical_dtype(self, expr: relax.Expr) -> str | None:
        """The ONNX dtype of an expression (differs from the Relax dtype for float8/int4 carriers)."""
        v = self.value_of(expr)
        if v is not None and v.dtype is not None:
            return v.dtype
        ty = expr.ty
        return str(ty.dtype) if isinstance(ty, relax.TensorType) else None

    def new_value(self, expr: relax.Expr, dtype: str | None = None) -> Value:
        expr = self.bb.normalize(expr)
        if isinstance(expr, (relax.Call, relax.If, relax.TupleGetItem)):  # bind it: later ops see a var, full type
            expr = self.bb.emit(expr)
        if isinstance(expr, tvm.ir.GenericConst):
            arr = expr.value.numpy()
            known = arr.astype(dtype) if dtype and dtype != arr.dtype.name else arr
            return Value(expr, known, dtype or arr.dtype.name)
        if dtype is None and isinstance(expr.ty, relax.TensorType):
            dtype = str(expr.ty.dtype)
        return Value(expr, None, dtype)

    # ---- graphs ---------------------------------------------------------------------------------------------
    def bind_initializers(self, graph: onnx.GraphProto) -> None:
        for t in graph.initializer:
            arr = onnx.numpy_helper.to_array(t)
            self.bind(t.name, Value(None, arr, arr.dtype.name))
        for st in graph.sparse_initializer:
            arr = _sparse_to_dense(st)
            self.bind(st.values.name, Value(None, arr, arr.dtype.name))

    def convert_nodes(self, nodes: Sequence[onnx.NodeProto], opsets: dict[str, int] | None = None) -> None:
        for node in nodes:
            self.convert_node(node, opsets or self.opsets)

    @contextlib.contextmanager
    def scope(self, bindings: dict[str, Value] | None = None) -> Iterator[dict[str, Value]]:
        self.scopes.append(dict(bindings or {}))
        try:
            yield self.scopes[-1]
        finally:
            self.scopes.pop()

    def convert_subgraph(self, graph: onnx.GraphProto, inputs: Sequence[Value | None]) -> list[Value]:
        """Convert a subgraph into the current block: its inputs bound to ``inputs``, outer values visible."""
        with self.scope() as sc:
            for vi, v in zip(graph.input, inputs):
                if v is not None:
                    sc[vi.name] = v
            self.bind_initializers(graph)
            self.convert_nodes(graph.node)
            return [self.lookup(o.name) for o in graph.output]

    # ---- nodes ----------------------------------------------------------------------------------------------
    def convert_node(self, node: onnx.NodeProto, opsets: dict[str, int]) -> None:
        domain = normalize_domain(node.domain)
        opset = opsets.get(domain, self.opsets.get(domain, 1))
        inputs: list[Value | None] = [self.lookup(n) if n else None for n in node.input]
        self.node = node
        outs = self._fold(node, inputs, domain, opset)
        if outs is None and domain == DEFAULT:
            outs = symbolic.evaluate(node, inputs, self)
        if outs is not None:
            for name, v in zip(node.output, outs):
                self.bind(name, v)
            return
        converter = find_converter(node.op_type, domain)
        if converter is None:
            found = function_body(node, opset, [self._type_proto(v) for v in inputs])
            if found is None:
                raise UnsupportedOpError({node.op_type: [node.name or f"<unnamed {node.op_type}>"]})
            nodes, body_opsets = expand_node(found[1], found[0])
            self.convert_nodes(nodes, {**opsets, **body_opsets})
            return
        attrs = parse_attributes(node)
        attrs["tvm_custom"] = {"name": node.name, "num_outputs": len(node.output)}
        args = onnx_input(self._unify_shapes(node, attrs, [self.expr(v) for v in inputs]))
        token = _CURRENT.set(self)
        try:
            result = converter.get_converter(opset)(self.bb, args, attrs, [{}, {}])
        finally:
            _CURRENT.reset(token)
        self._bind_outputs(node, result)

    def _bind_outputs(self, node: onnx.NodeProto, result) -> None:
        if isinstance(result, Value):
            items: list = [result]
        elif isinstance(result, (list, tuple)):
            items = list(result)
        elif isinstance(result, relax.Tuple) and node.op_type not in _SEQUENCE_OUTPUT_OPS:
            items = list(result.fields)
        else:
            result = self.bb.normalize(result)
            ty = result.ty
            if isinstance(ty, relax.TupleType) and node.op_type not in _SEQUENCE_OUTPUT_OPS:
                items = [self.bb.emit(relax.TupleGetItem(result, i)) for i in range(len(ty.fields))]
            else:
                items = [result]
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(items) or items[i] is None:
                raise ModelError(f"{node.op_type} does not produce its output {i} ({name!r})")
            item = items[i]
            if isinstance(item, Value):
                v = item
            else:
                v = self.new_value(self._with_shape(node, item), self._declared_dtype(name, node, i))
            self.bind(name, v)

    def _unify_shapes(self, node: onnx.NodeProto, attrs: dict, args: list) -> list:
        """Operands whose symbolic dims Relax cannot prove compatible, made so: for broadcasting ops each operand
        is broadcast to the common shape (``Select(a == 1, b, a)`` per dim); Concat's inputs are match-cast to
        the first input's dims off the axis. Without this Relax infers no shape and cannot legalize the op."""
        def dims(e):
            ty = e.ty if e is not None else None
            return list(ty.shape.values) if isinstance(ty, relax.TensorType) and isinstance(
                ty.shape, relax.ShapeExpr) else None

        shapes = [dims(a) for a in args]
        if node.op_type in _BROADCAST_OPS and len(args) > 1 and all(sh is not None for a, sh in zip(args, shapes)
                                                                     if a is not None):
            present = [(a, sh) for a, sh in zip(args, shapes) if a is not None]
            rank = max(len(sh) for _, sh in present)
            one = tirx.const(1, "int64")
            padded = [[one] * (rank - len(sh)) + sh for _, sh in present]
            target: list = []
            for i in range(rank):
                col = [p[i] for p in padded]
                big = [d for d in col if not (isinstance(d, tirx.IntImm) and int(d) == 1)]
                static = [d for d in big if isinstance(d, tirx.IntImm)]
                if static:
                    target.append(static[0])  # a valid model broadcasts everything else to it
                elif not big:
                    target.append(one)
                elif all(self.analyzer.can_prove_equal(d, big[0]) for d in big):
                    target.append(big[0])
                else:
                    target.append(None)  # only the run-time values can tell
            if any(d is None for d in target):
                t = None
                for p in padded:
                    st = self.bb.emit(relax.op.shape_to_tensor(relax.ShapeExpr(p)))
                    t = st if t is None else self.bb.emit(relax.op.where(
                        relax.op.equal(t, relax.const(1, "int64")), st, t))
                fresh = [tirx.Var(f"bcast{i}", "int64") for i in range(rank)]
                self.bb.match_cast(self.bb.emit(relax.op.tensor_to_shape(t)), relax.ShapeType(fresh))
                target = [fresh[i] if d is None else d for i, d in enumerate(target)]

            def fits(p) -> bool:
                return all((isinstance(x, tirx.IntImm) and int(x) == 1) or self.analyzer.can_prove_equal(x, y)
                           for x, y in zip(p, target))

            it = iter(zip(present, padded))
            out = []
            for a in args:
                if a is None:
                    out.append(a)
                    continue
                (_, _), p = next(it)
                out.append(a if fits(p) else self.bb.emit(relax.op.broadcast_to(a, relax.ShapeExpr(target))))
            return out
        if node.op_type == "Concat" and len(args) > 1 and all(sh is not None for sh in shapes):
            axis = attrs.get("axis", 0) % max(len(shapes[0]), 1)
            ref = shapes[0]
            out = [args[0]]
            for a, sh in zip(args[1:], shapes[1:]):
                if len(sh) == len(ref) and not all(i == axis or self.analyzer.can_prove_equal(x, y)
                                                   for i, (x, y) in enumerate(zip(sh, ref))):
                    a = self.bb.match_cast(a, relax.TensorType([sh[i] if i == axis else ref[i]
                                                                for i in range(len(ref))], str(a.ty.dtype)))
                out.append(a)
            return out
        return args

    def _type_proto(self, v: Value | None) -> onnx.TypeProto:
        """An ONNX type for a value (what context-dependent function bodies are instantiated with)."""
        if v is None or v.dtype is None:
            return onnx.TypeProto()
        e = self.bb.normalize(self.expr(v))
        ty = e.ty
        if not isinstance(ty, relax.TensorType):
            return onnx.TypeProto()
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(v.dtype))
        if isinstance(ty.shape, relax.ShapeExpr):
            dims = [int(d) if isinstance(d, tirx.IntImm) else str(d) for d in ty.shape.values]
            return helper.make_tensor_type_proto(elem, dims)
        return helper.make_tensor_type_proto(elem, None)

    def _with_shape(self, node: onnx.NodeProto, expr: relax.Expr) -> relax.Expr:
        """A tensor result whose type has only a rank gets dims Relax can legalize later ops on: the broadcast of
        its operands' dims for elementwise ops (Relax gives up when symbolic dims differ), else fresh dims
        bound at run time."""
        expr = self.bb.normalize(expr)
        ty = expr.ty
        if not isinstance(ty, relax.TensorType) or isinstance(ty.shape, relax.ShapeExpr) or ty.ndim < 0:
            return expr
        if node.op_type in _BROADCAST_OPS:
            shapes = []
            for n in node.input:
                if not n:
                    continue
                e = self.expr(self.lookup(n))
                sty = e.ty
                if not isinstance(sty, relax.TensorType) or not isinstance(sty.shape, relax.ShapeExpr):
                    shapes = None
                    break
                shapes.append(list(sty.shape.values))
            if shapes is not None and max(len(sh) for sh in shapes) == ty.ndim:
                dims = [tirx.const(1, "int64")] * ty.ndim
                for sh in shapes:
                    sh = [tirx.const(1, "int64")] * (ty.ndim - len(sh)) + sh
                    dims = [_broadcast_dim(a, b, self.analyzer) for a, b in zip(dims, sh)]
                return self.bb.match_cast(expr, relax.TensorType(dims, ty.dtype))
        dims = [tirx.Var(f"{node.op_type.lower()}_d{i}", "int64") for i in range(ty.ndim)]
        return self.bb.match_cast(expr, relax.TensorType(dims, ty.dtype))

    def _declared_dtype(self, name: str, node: onnx.NodeProto, index: int) -> str | None:
        """The ONNX dtype of a node output, from shape inference (needed where it differs from the Relax one)."""
        t = self.value_types.get(name)
        if t is not None and t.HasField("tensor_type") and t.tensor_type.elem_type:
            try:
                return np_dtype_name(t.tensor_type.elem_type)
            except (KeyError, TypeError, ValueError):
                return None
        return None

    def _fold(self, node: onnx.NodeProto, inputs: list[Value | None], domain: str, opset: int) -> list[Value] | None:
        if node.op_type in _NO_FOLD or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                           for a in node.attribute):
            return None
        arrays = []
        for v in inputs:
            if v is not None and v.static is None:
                return None
            arrays.append(None if v is None else v.static)
        if sum(a.size for a in arrays if a is not None) > _FOLD_MAX_ELEMENTS:
            return None
        from onnx.reference import ReferenceEvaluator

        try:
            with np.errstate(all="ignore"):
                ref = ReferenceEvaluator(node, opsets={domain: opset})
                feeds = {n: a for n, a in zip(node.input, arrays) if n}
                outs = ref.run(None, feeds)
        except Exception:  # the reference cannot do it (or the node is invalid): let the converter decide
            return None
        values = []
        for o in outs:
            if not isinstance(o, (np.ndarray, np.generic)):
                return None  # sequences, optionals
            o = np.asarray(o)
            if o.dtype == object or o.dtype.kind in "USO":
                return None
            values.append(Value(None, o, o.dtype.name))
        return values

    # ---- main -----------------------------------------------------------------------------------------------
    def import_main(self, graph: onnx.GraphProto, params: list[tuple[str, relax.Var, str]]) -> tvm.IRModule:
        """``params``: (ONNX name, Relax parameter, ONNX dtype) for each graph input, in order."""
        with self.bb.function("main", params=[p for _, p, _ in params]):
            with contextlib.ExitStack() as stack:
                dataflow = not has_control_flow(graph)
                if dataflow:
                    stack.enter_context(self.bb.dataflow())
                self.bind_initializers(graph)
                for name, var, dtype in params:
                    self.bind(name, Value(var, None, dtype))
                self.convert_nodes(graph.node)
                outs = []
                for o in graph.output:
                    v = self.lookup(o.name)
                    e = self.expr(v)
                    if e is None:
                        raise ModelError(f"graph output {o.name!r} is an empty optional")
                    outs.append(e)
                result = outs[0] if len(outs) == 1 else relax.Tuple(outs)
                if dataflow:
                    result = self.bb.emit_output(result)
            self.bb.emit_func_output(result)
        mod = self.bb.get()
        mod["main"] = mod["main"].with_attr("num_input", len(params))
        return mod


_BROADCAST_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "Where", "Max", "Min", "Sum", "Mean", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    "PRelu",
})


def _broadcast_dim(a, b, analyzer):
    """The broadcast of two dims (ints or TIR expressions), assuming the model is valid."""
    ai, bi = isinstance(a, tirx.IntImm), isinstance(b, tirx.IntImm)
    if ai and int(a) == 1:
        return b
    if bi and int(b) == 1:
        return a
    if ai or analyzer.can_prove_equal(a, b):
        return a
    if bi:
        return b
    return analyzer.simplify(tirx.Select(tirx.EQ(a, tirx.const(1, "int64")), b, a))


def _sparse_to_dense(st: onnx.SparseTensorProto) -> np.ndarray:
    values = onnx.numpy_helper.to_array(st.values)
    idx = onnx.numpy_helper.to_array(st.indices)
    dense = np.zeros(tuple(st.dims), dtype=values.dtype)
    if idx.ndim == 1:
        dense.reshape(-1)[idx] = values
    else:
        dense[tuple(idx.T)] = values
    return dense

