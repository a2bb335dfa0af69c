"""What dlc's converters share: values known at import time, shapes, and run-time shape values.

Three kinds of operand decide an output shape (Reshape's shape, Slice's starts, a reduction's axes, ...):

* known ints (initializers, Constants, folded shape arithmetic): ``static_ints``;
* known up to symbolic dims (``Shape(x)`` of an ``(N, ...)`` tensor): ``known`` gives a ``SymArray``;
* run-time tensors (a graph input, a data-dependent computation). A converter then computes the *final*
  output dims as a small int64 tensor with Relax ops and ``bind_dims`` turns it into fresh symbolic dims, so
  the kernels are compiled once for every value. Only non-negative values (dims) are bound that way: TVM
  assumes shape variables are non-negative. Signed parameters (starts, steps, pads) stay tensors that the
  kernel reads (``emit_te`` with a ``te.Tensor`` argument).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from tvm import relax, te, tirx
from tvm.relax import op as R

from ..graph import current
from ..values import Known, SymArray, simplify

_counter = itertools.count()


def known(expr: relax.Expr | None) -> Known | None:
    """The value of an input when the importer knows it (a numpy array, or a SymArray of dims)."""
    if expr is None:
        return None
    return current().known(expr)


def static(expr: relax.Expr | None) -> np.ndarray | None:
    k = known(expr)
    return k if isinstance(k, np.ndarray) else None


def static_ints(expr: relax.Expr | None) -> list[int] | None:
    a = static(expr)
    return None if a is None else [int(x) for x in a.reshape(-1)]


def static_scalar(expr: relax.Expr | None):
    a = static(expr)
    return None if a is None or a.size != 1 else a.reshape(-1)[0].item()


def known_dims(expr: relax.Expr | None) -> list | None:
    """A 1-D int operand's values as ints / TIR expressions when known at import time, else None."""
    k = known(expr)
    if isinstance(k, np.ndarray):
        return [int(x) for x in k.reshape(-1)]
    if isinstance(k, SymArray):
        return [simplify(x) for x in k.values.reshape(-1)]
    return None


def logical_dtype(expr: relax.Expr) -> str:
    """The ONNX dtype (float8/int4 tensors are carried in wider Relax dtypes)."""
    return current().logical_dtype(expr) or dtype(expr)


def dtype(expr: relax.Expr) -> str:
    return str(expr.ty.dtype)


def ndim(expr: relax.Expr) -> int:
    return int(expr.ty.ndim)


def shape_of(expr: relax.Expr) -> list | None:
    """Dims as ints / TIR expressions, or None when Relax only knows the rank."""
    ty = expr.ty
    if isinstance(ty, relax.TensorType) and isinstance(ty.shape, relax.ShapeExpr):
        return [simplify(d) for d in ty.shape.values]
    return None


def shape_tensor(bb: relax.BlockBuilder, expr: relax.Expr) -> relax.Expr:
    """A tensor's shape as a run-time int64 vector (works when Relax knows only the rank)."""
    dims = shape_of(expr)
    if dims is not None:
        return dims_tensor(bb, dims)
    return bb.emit(R.shape_to_tensor(bb.emit(R.shape_of(expr))))


def dims_tensor(bb: relax.BlockBuilder, dims: Sequence) -> relax.Expr:
    """An int64 vector holding these dims (ints or TIR expressions) at run time."""
    if all(isinstance(d, int) for d in dims):
        return relax.const(np.array(list(dims), dtype="int64").reshape(len(dims)), "int64")
    return bb.emit(R.shape_to_tensor(relax.ShapeExpr([tirx.const(d, "int64") if isinstance(d, int) else d
                                                       for d in dims])))


def int64_vector(bb: relax.BlockBuilder, expr: relax.Expr) -> relax.Expr:
    """A run-time int operand as a 1-D int64 tensor."""
    if dtype(expr) != "int64":
        expr = bb.emit(R.astype(expr, "int64"))
    if ndim(expr) != 1:
        expr = bb.emit(R.reshape(expr, [-1]))
    return expr


def vector_length(expr: relax.Expr) -> int:
    dims = shape_of(expr)
    if dims is None or not all(isinstance(d, int) for d in dims):
        raise ValueError("the length of this shape/axes operand must be known at compile time")
    return int(np.prod(dims, dtype=np.int64))


def bind_dims(bb: relax.BlockBuilder, dims: relax.Expr, hint: str = "d") -> list[tirx.Var]:
    """Fresh symbolic dims bound at run time to the values of a non-negative int64 vector."""
    dims = bb.normalize(dims)
    n = vector_length(dims)
    k = next(_counter)
    vars_ = [tirx.Var(f"{hint}{k}_{i}", "int64") for i in range(n)]
    bb.match_cast(bb.emit(R.tensor_to_shape(dims)), relax.ShapeType(vars_))
    return vars_


def dims_of(bb: relax.BlockBuilder, expr: relax.Expr, hint: str = "d") -> list:
    """A 1-D non-negative int operand (a shape) as dims: known values, or run-time values bound to vars."""
    k = known_dims(expr)
    if k is not None:
        return k
    return bind_dims(bb, int64_vector(bb, expr), hint)


def scalar_dim(bb: relax.BlockBuilder, expr: relax.Expr, hint: str = "k"):
    """A non-negative int scalar operand (TopK's k, OneHot's depth) as an int or a bound symbolic dim."""
    k = known_dims(expr)
    if k is not None:
        return k[0]
    return bind_dims(bb, int64_vector(bb, expr), hint)[0]


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def prod(dims: Sequence):
    out = 1
    for d in dims:
        out = out * d
    return simplify(out) if not isinstance(out, int) else out


def emit_te(bb: relax.BlockBuilder, fn: Callable, *args, name: str, **kwargs) -> relax.Expr:
    return bb.emit_te(fn, *args, primfunc_name_hint=name, **kwargs)


def prim(x, dt: str = "int64"):
    """A Python number or TIR expression as a TIR expression of dtype ``dt``."""
    if isinstance(x, (int, float, bool, np.number, np.bool_)):
        return tirx.const(x, dt)
    return x if str(x.ty) == dt else tirx.Cast(dt, x)


def te_int(t: te.Tensor, *idx) -> tirx.PrimExpr:
    """An element of an int tensor read inside a TE compute, as int64."""
    v = t(*idx)
    return v if str(v.ty) == "int64" else tirx.Cast("int64", v)


def ints(a) -> relax.Expr:
    """An int64 constant (``relax.const`` alone would make numpy int64 arrays int32)."""
    return relax.const(np.asarray(a, dtype="int64"), "int64")


def sized(bb: relax.BlockBuilder, expr: relax.Expr, hint: str = "s") -> relax.Expr:
    """``expr`` with a shape Relax can legalize ops on: a tensor whose type has only a rank (an If/Loop
    result) is match-cast to fresh symbolic dims, bound at run time."""
    expr = bb.normalize(expr)
    ty = expr.ty
    if isinstance(ty, relax.TensorType) and not isinstance(ty.shape, relax.ShapeExpr) and ty.ndim >= 0:
        k = next(_counter)
        dims = [tirx.Var(f"{hint}{k}_{i}", "int64") for i in range(ty.ndim)]
        return bb.match_cast(expr, relax.TensorType(dims, ty.dtype))
    return expr
