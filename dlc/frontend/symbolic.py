"""Shape arithmetic on symbolic dims at import time: ``Shape(x)`` and the small integer ops exports apply to it.

``evaluate`` handles a node when every input is known (``Value.known``) and at least one is a ``SymArray``: it
computes the output on numpy object arrays whose elements are ints or TIR expressions, e.g.
``Gather(Shape(x), 0) -> [N]``, ``Concat([N], [-1]) -> [N, -1]``, ``Mul([N], [8]) -> [N*8]``. ``Shape`` and
``Size`` of a tensor whose shape Relax knows are evaluated even when the tensor itself is not known. Anything
else returns None and goes to a converter, which receives the value as a run-time tensor (``materialize``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import onnx
from tvm import relax, tirx

from .values import Known, SymArray, Value, np_dtype_name, simplify, sym_or_static

if TYPE_CHECKING:
    from .graph import GraphImporter

_INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"})


def _prim(x):
    """An element as a TIR expression (int64 for integers, bool for booleans)."""
    if isinstance(x, (bool, np.bool_)):
        return tirx.const(bool(x), "bool")
    if isinstance(x, (int, np.integer)):
        return tirx.const(int(x), "int64")
    if str(x.ty) not in ("bool", "int64"):
        return tirx.Cast("int64", x)
    return x


def materialize(s: SymArray) -> relax.Expr:
    """A Relax tensor holding a symbolic array's values at run time."""
    flat = [_prim(v) for v in s.values.reshape(-1)]
    flat = [tirx.Cast("int64", v) if str(v.ty) == "bool" else v for v in flat]
    t: relax.Expr = relax.op.shape_to_tensor(relax.ShapeExpr(flat))
    if s.values.ndim != 1:
        t = relax.op.reshape(t, relax.ShapeExpr(list(s.values.shape)))
    if s.dtype != "int64":
        t = relax.op.astype(t, s.dtype)
    return t


def shape_of(importer: GraphImporter, v: Value) -> list | None:
    """A tensor's dims as ints / TIR expressions, if Relax knows them."""
    if v.known is not None:
        return list(v.known.shape)
    ty = importer.bb.normalize(importer.expr(v)).ty
    if isinstance(ty, relax.TensorType) and isinstance(ty.shape, relax.ShapeExpr):
        return [simplify(d, importer.analyzer) for d in ty.shape.values]
    return None


def _obj(k: Known) -> np.ndarray:
    if isinstance(k, SymArray):
        return k.values
    out = np.empty(k.shape, dtype=object)
    out.reshape(-1)[:] = [x.item() if hasattr(x, "item") else x for x in k.reshape(-1)]
    return out


def _elementwise(fn: Callable) -> Callable:
    return np.frompyfunc(fn, 2, 1)


def _div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return int(a / b) if b else 0
    return tirx.truncdiv(_prim(a), _prim(b))


def _mod(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a % b if b else 0
    return tirx.floormod(_prim(a), _prim(b))


def _cmp(op):
    def f(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return {"eq": a == b, "lt": a < b, "gt": a > b, "le": a <= b, "ge": a >= b}[op]
        a, b = _prim(a), _prim(b)
        return {"eq": tirx.EQ, "lt": tirx.LT, "gt": tirx.GT, "le": tirx.LE, "ge": tirx.GE}[op](a, b)
    return f


def _max(a, b):
    return max(a, b) if isinstance(a, int) and isinstance(b, int) else tirx.max(_prim(a), _prim(b))


def _min(a, b):
    return min(a, b) if isinstance(a, int) and isinstance(b, int) else tirx.min(_prim(a), _prim(b))


def _where(c, a, b):
    if isinstance(c, (bool, int)):
        return a if c else b
    return tirx.Select(c, _prim(a), _prim(b))


_BINARY = {
    "Add": _elementwise(lambda a, b: a + b), "Sub": _elementwise(lambda a, b: a - b),
    "Mul": _elementwise(lambda a, b: a * b), "Div": _elementwise(_div), "Mod": _elementwise(_mod),
    "Max": _elementwise(_max), "Min": _elementwise(_min),
    "Equal": _elementwise(_cmp("eq")), "Less": _elementwise(_cmp("lt")), "Greater": _elementwise(_cmp("gt")),
    "LessOrEqual": _elementwise(_cmp("le")), "GreaterOrEqual": _elementwise(_cmp("ge")),
}
_COMPARE = frozenset({"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"})


def _ints(k: Known | None) -> list[int] | None:
    return None if not isinstance(k, np.ndarray) else [int(x) for x in k.reshape(-1)]


def _axes(node_attrs: dict, inputs: list[Value | None], index: int, opset_has_input: bool) -> list[int] | None:
    if opset_has_input:
        if len(inputs) > index and inputs[index] is not None:
            return _ints(inputs[index].known)
        return []
    return list(node_attrs.get("axes", []))


def evaluate(node: onnx.NodeProto, inputs: list[Value | None], importer: GraphImporter) -> list[Value] | None:
    op = node.op_type
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if op in ("Shape", "Size"):
        if inputs[0] is None:
            return None
        dims = shape_of(importer, inputs[0])
        if dims is None:
            return None
        if op == "Size":
            prod = 1
            for d in dims:
                prod = prod * d
            return [Value(None, sym_or_static(np.array([prod], dtype=object).reshape(()), "int64"), "int64")]
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        arr = np.empty(len(dims), dtype=object)
        arr[:] = dims
        return [Value(None, sym_or_static(arr[start:end], "int64"), "int64")]

    present = [v for v in inputs if v is not None]
    if not present or any(v.known is None for v in present) or not any(isinstance(v.known, SymArray)
                                                                          for v in present):
        return None
    k = [None if v is None else v.known for v in inputs]
    dtype = present[0].dtype or "int64"
    try:
        out = _evaluate(op, attrs, inputs, k, importer.opsets.get("", 1))
    except (IndexError, ValueError, TypeError):
        return None
    if out is None:
        return None
    values, out_dtype = out
    return [Value(None, sym_or_static(np.asarray(values, dtype=object), out_dtype or dtype), out_dtype or dtype)]


def _evaluate(op: str, attrs: dict, inputs: list[Value | None], k: list, opset: int):
    a = _obj(k[0]) if k[0] is not None else None
    if op == "Identity":
        return a, None
    if op == "Cast":
        to = np_dtype_name(attrs["to"])
        return (a, to) if to in _INT_DTYPES else None
    if op in _BINARY:
        r = _BINARY[op](a, _obj(k[1]))
        return r, ("bool" if op in _COMPARE else None)
    if op in ("Neg", "Abs"):
        return (np.frompyfunc(lambda x: -x, 1, 1)(a) if op == "Neg"
                else np.frompyfunc(lambda x: abs(x) if isinstance(x, int) else tirx.abs(x), 1, 1)(a)), None
    if op == "Not":
        return np.frompyfunc(lambda x: (not x) if isinstance(x, bool) else tirx.Not(x), 1, 1)(a), "bool"
    if op == "Where":
        return np.frompyfunc(_where, 3, 1)(a, _obj(k[1]), _obj(k[2])), inputs[1].dtype
    if op == "Gather":
        idx = _ints(k[1])
        if idx is None:
            return None
        axis = attrs.get("axis", 0)
        n = a.shape[axis]
        ind = np.array(idx).reshape(k[1].shape)
        return np.take(a, np.where(ind < 0, ind + n, ind), axis=axis), None
    if op == "Concat":
        return np.concatenate([_obj(x) for x in k if x is not None], axis=attrs["axis"]), None
    if op == "Unsqueeze":
        axes = _axes(attrs, inputs, 1, opset >= 13)
        if axes is None:
            return None
        out = a
        rank = a.ndim + len(axes)
        for ax in sorted(x % rank for x in axes):
            out = np.expand_dims(out, ax)
        return out, None
    if op == "Squeeze":
        axes = _axes(attrs, inputs, 1, opset >= 13)
        if axes is None:
            return None
        return (np.squeeze(a, axis=tuple(axes)) if axes else np.squeeze(a)), None
    if op == "Reshape":
        shape = _ints(k[1])
        if shape is None:
            return None
        if not attrs.get("allowzero", 0):
            shape = [a.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return a.reshape(shape), None
    if op == "Flatten":
        axis = attrs.get("axis", 1) % max(a.ndim, 1) if a.ndim else 0
        return a.reshape(int(np.prod(a.shape[:axis])), -1), None
    if op == "Slice":
        if opset >= 10:
            starts, ends = _ints(k[1]), _ints(k[2])
            axes = _ints(k[3]) if len(k) > 3 and k[3] is not None else list(range(len(starts or [])))
            steps = _ints(k[4]) if len(k) > 4 and k[4] is not None else [1] * len(starts or [])
        else:
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes = list(attrs.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        if None in (starts, ends, axes, steps):
            return None
        sl = [slice(None)] * a.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            sl[ax] = slice(s, e, st)
        return a[tuple(sl)], None
    if op in ("ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin"):
        axes = _axes(attrs, inputs, 1, opset >= (18 if op != "ReduceSum" else 13))
        if axes is None:
            return None
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return a, None
            axes = list(range(a.ndim))
        fn = {"ReduceProd": lambda x, y: x * y, "ReduceSum": lambda x, y: x + y,
              "ReduceMax": _max, "ReduceMin": _min}[op]
        ufunc = np.frompyfunc(fn, 2, 1)
        out = a
        for ax in sorted((x % a.ndim for x in axes), reverse=True):  # one axis at a time: not reorderable
            out = ufunc.reduce(out, axis=ax, keepdims=True)
        return (out if keep else np.squeeze(out, axis=tuple(x % a.ndim for x in axes))), None
    if op == "Expand":
        shape = _ints(k[1])
        if shape is None:
            return None
        target = np.broadcast_shapes(a.shape, tuple(shape))
        return np.broadcast_to(a, target).copy(), None
    return None
