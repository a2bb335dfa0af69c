"""Reductions (ReduceSum ... ReduceLogSumExp), scans (CumSum, CumProd) and TopK, with run-time operands.

Known axes give Relax's own reduction ops (which the schedules know). Axes that are a run-time tensor give one
TE kernel over the *keepdims* shape: each dim has a reduction extent ``R_i`` (the dim if reduced, else 1) and
an output extent ``O_i`` (1 if reduced, else the dim), both computed at run time and bound as symbolic dims,
and ``out[o] = reduce_r f(x[o + r])``. ``keepdims=0`` then reshapes the reduced dims away.
"""

from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx
from tvm.relax import op as R

from ..converters import Converter, register_converter
from ..values import simplify
from .common import (
    bind_dims,
    dtype,
    emit_te,
    int64_vector,
    ints,
    ndim,
    normalize_axis,
    prim,
    prod,
    scalar_dim,
    shape_of,
    shape_tensor,
    static_ints,
    te_int,
    vector_length,
)

I64 = "int64"

# op -> (pre-map, reducer, post-map); maps take and give Relax exprs (known axes) or TIR exprs (TE kernel).
_KINDS = {
    "ReduceSum": (None, "sum", None),
    "ReduceMean": (None, "mean", None),
    "ReduceMax": (None, "max", None),
    "ReduceMin": (None, "min", None),
    "ReduceProd": (None, "prod", None),
    "ReduceL1": ("abs", "sum", None),
    "ReduceL2": ("square", "sum", "sqrt"),
    "ReduceSumSquare": ("square", "sum", None),
    "ReduceLogSum": (None, "sum", "log"),
    "ReduceLogSumExp": ("exp", "sum", "log"),  # with the max subtracted first, for range
}
# The opset from which each reduction takes ``axes`` as an input instead of an attribute.
_AXES_INPUT_FROM = {op: 18 for op in _KINDS} | {"ReduceSum": 13}


def _relax_reduce(bb, x, axes, keepdims: bool, op: str):
    pre, red, post = _KINDS[op]
    if op == "ReduceLogSumExp":
        if axes == []:
            return R.log(R.exp(x))
        m = bb.emit(R.max(x, axes, keepdims=True))
        m = bb.emit(R.where(R.isinf(m), R.zeros_like(m), m))  # all -inf (or empty): keep -inf, not NaN
        s = R.log(R.sum(R.exp(R.subtract(x, m)), axes, keepdims=keepdims))
        return R.add(s, m if keepdims else R.squeeze(m, axes))
    if pre == "abs":
        x = R.abs(x)
    elif pre == "square":
        x = R.multiply(x, x)
    dims = shape_of(x)
    if axes == []:  # noop_with_empty_axes: the element maps, no reduction
        out = x
    elif red in ("max", "min") and dims is not None and 0 in [dims[a] for a in (axes or range(len(dims)))]:
        big = float("inf") if red == "min" else -float("inf")  # the max of nothing is -inf
        fill = big if dtype(x).startswith(("float", "bfloat")) else (
            np.iinfo(dtype(x)).max if red == "min" else np.iinfo(dtype(x)).min)
        kept = [1 if (axes is None or i in axes) else d for i, d in enumerate(dims)]
        if not keepdims:
            kept = [d for i, d in enumerate(dims) if not (axes is None or i in axes)]
        out = R.full(relax.ShapeExpr([prim(d) for d in kept]), relax.const(fill, dtype(x)), dtype(x))
    else:
        fn = {"sum": R.sum, "mean": R.mean, "max": R.max, "min": R.min, "prod": R.prod}[red]
        out = fn(x, axes, keepdims=keepdims)
    if post == "sqrt":
        out = R.sqrt(out)
    elif post == "log":
        out = R.log(out)
    return out


def _te_reduce(x: te.Tensor, odims, op: str, m: te.Tensor | None = None):
    """out[o] = reduce_r f(x[o + r]), output odims in keepdims layout. Each output dim is 1 (reduced) or the
    input dim, so the reduction extent is ``d - o + 1``: derived from buffer shapes, no extra kernel params."""
    pre, red, post = _KINDS[op]
    dt = str(x.dtype)
    rdims = [simplify(prim(d) - prim(o) + 1) for d, o in zip(x.shape, odims)]
    raxes = [te.reduce_axis((0, prim(d)), name=f"r{i}") for i, d in enumerate(rdims)]

    def body(*o):
        v = x(*[o[i] + raxes[i] for i in range(len(o))])
        if pre == "abs":
            v = tirx.abs(v)
        elif pre == "square":
            v = v * v
        elif pre == "exp":
            v = tirx.exp(v - m(*o))
        return v

    if red in ("sum", "mean"):
        acc = te.compute([prim(d) for d in odims], lambda *o: te.sum(body(*o), axis=raxes), name="reduce")
    elif red in ("max", "min"):
        if dt.startswith(("float", "bfloat")):  # ONNX: the max of nothing is -inf (TVM's init is -FLT_MAX)
            big = float("inf") if red == "min" else -float("inf")
            fn = te.comm_reducer(lambda a, b: tirx.max(a, b) if red == "max" else tirx.min(a, b),
                                 lambda t: tirx.const(big, t), name=red)
        else:
            fn = te.max if red == "max" else te.min
        acc = te.compute([prim(d) for d in odims], lambda *o: fn(body(*o), axis=raxes), name="reduce")
    else:
        mul = te.comm_reducer(lambda a, b: a * b, lambda t: tirx.const(1, t), name="prod")
        acc = te.compute([prim(d) for d in odims], lambda *o: mul(body(*o), axis=raxes), name="reduce")

    def finish(*o):
        v = acc(*o)
        if red == "mean":
            v = v / tirx.Cast(dt, prim(prod(rdims))) if dt.startswith("float") else tirx.truncdiv(
                v, tirx.Cast(dt, prim(prod(rdims))))
        if post == "sqrt":
            v = tirx.sqrt(v)
        elif post == "log":
            v = tirx.log(v)
        if op == "ReduceLogSumExp":
            v = v + m(*o)
        return v

    return te.compute([prim(d) for d in odims], finish, name="reduce_out")


def _runtime_reduce(bb, x, axes_t, keepdims: bool, noop: bool, op: str):
    r = ndim(x)
    ax = int64_vector(bb, axes_t)
    k = vector_length(ax)
    xs = shape_tensor(bb, x)
    if k == 0:
        if noop:
            return _relax_reduce(bb, x, [], keepdims, op)
        return _relax_reduce(bb, x, None, keepdims, op)
    ax = bb.emit(R.where(R.less(ax, ints(0)), R.add(ax, ints(r)), ax))
    flags = bb.emit(R.sum(R.astype(R.equal(ints(np.arange(r).reshape(r, 1)), R.reshape(ax, [1, k])), I64), axis=[1]))
    flags = bb.emit(R.minimum(flags, ints(1)))
    odims = bind_dims(bb, R.where(R.greater(flags, ints(0)), ints(np.ones(r)), xs), "out")
    m = None
    if op == "ReduceLogSumExp":
        m = emit_te(bb, _te_reduce, x, odims, "ReduceMax", name="reduce_max_dynamic")
        m = bb.emit(R.where(R.isinf(m), R.zeros_like(m), m))
        out = emit_te(bb, _te_reduce, x, odims, op, m, name="reduce_lse_dynamic")
    else:
        out = emit_te(bb, _te_reduce, x, odims, op, name=f"{op.lower()}_dynamic")
    if keepdims:
        return out
    order = bb.emit(R.argsort(R.add(R.multiply(flags, ints(r)), ints(np.arange(r))), dtype=I64))
    kept = bb.emit(R.take(xs, R.strided_slice(order, [0], [0], [r - k]), axis=0))
    return R.reshape(out, relax.ShapeExpr(bind_dims(bb, kept, "kept")))


class _Reduce(Converter):
    op = ""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        if dtype(x) == "bool":  # max = any, min = all: reduce as int8
            out = cls._impl_v1(bb, [bb.emit(R.astype(x, "int8")), *inputs[1:]], attr, params)
            return R.greater(out, relax.const(0, "int8"))  # empty: max -128 -> False, min 127 -> True
        keepdims = bool(attr.get("keepdims", 1))
        noop = bool(attr.get("noop_with_empty_axes", 0))
        if cls._axes_is_input:
            if len(inputs) > 1 and inputs[1] is not None:
                axes = static_ints(inputs[1])
                if axes is None:
                    return _runtime_reduce(bb, x, inputs[1], keepdims, noop, cls.op)
            else:
                axes = None
        else:
            axes = attr.get("axes")
            axes = list(axes) if axes is not None else None
        if axes is not None and len(axes) == 0:
            axes = [] if noop else None
        if axes:
            axes = sorted({normalize_axis(a, ndim(x)) for a in axes})
        if axes is None and noop and cls._axes_is_input:
            axes = []
        return _relax_reduce(bb, x, axes, keepdims, cls.op)


def _make_reduce(op: str):
    since = _AXES_INPUT_FROM[op]
    old = type(op + "Attr", (_Reduce,), {"op": op, "_axes_is_input": False})
    new = type(op + "Input", (_Reduce,), {"op": op, "_axes_is_input": True})

    class Conv(Converter):
        __doc__ = f"{op}: axes as attribute before opset {since}, as (possibly run-time) input from it."

        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            return old._impl_v1(bb, inputs, attr, params)

    setattr(Conv, f"_impl_v{since}", classmethod(lambda cls, bb, inputs, attr, params:
                                                 new._impl_v1(bb, inputs, attr, params)))
    Conv.__name__ = op
    register_converter(op)(Conv)


for _op in _KINDS:
    _make_reduce(_op)


# ---- CumSum, CumProd -----------------------------------------------------------------------------------------------

def _te_scan_runtime_axis(x: te.Tensor, axis_t: te.Tensor, exclusive: bool, reverse: bool, kind: str):
    """Cumulative sum/product along an axis chosen at run time: one kernel, O(n * max dim)."""
    r = len(x.shape)
    dims = [prim(d) for d in x.shape]
    maxd = dims[0]
    for d in dims[1:]:
        maxd = tirx.max(maxd, d)
    k = te.reduce_axis((0, maxd), name="k")
    a = te_int(axis_t)
    a = tirx.Select(a < 0, a + r, a)
    dt = str(x.dtype)

    def body(*o):
        pos = o[0]
        extent = dims[0]
        for i in range(1, r):
            pos = tirx.Select(a == i, o[i], pos)
            extent = tirx.Select(a == i, dims[i], extent)
        src = [tirx.Select(a == i, tirx.min(k, dims[i] - 1), o[i]) for i in range(r)]
        if reverse:
            take = (k > pos) if exclusive else (k >= pos)
        else:
            take = (k < pos) if exclusive else (k <= pos)
        take = tirx.all(take, k < extent)
        ident = tirx.const(0 if kind == "sum" else 1, dt)
        return tirx.Select(take, x(*src), ident)

    if kind == "sum":
        return te.compute(dims, lambda *o: te.sum(body(*o), axis=[k]), name="cumsum")
    mul = te.comm_reducer(lambda p, q: p * q, lambda t: tirx.const(1, t), name="prod")
    return te.compute(dims, lambda *o: mul(body(*o), axis=[k]), name="cumprod")


class _Cumulative(Converter):
    kind = "sum"

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x, axis_t = inputs[0], inputs[1]
        exclusive, reverse = bool(attr.get("exclusive", 0)), bool(attr.get("reverse", 0))
        axis = static_ints(axis_t)
        if axis is None:
            return emit_te(bb, _te_scan_runtime_axis, x, axis_t, exclusive, reverse, cls.kind,
                           name=f"cum{cls.kind}_dynamic")
        axis = normalize_axis(axis[0], ndim(x))
        fn = R.cumsum if cls.kind == "sum" else R.cumprod
        if reverse:
            x = bb.emit(R.flip(x, axis))
        out = bb.emit(fn(x, axis=axis, exclusive=exclusive))
        return R.flip(out, axis) if reverse else out


@register_converter("CumSum")
class CumSum(_Cumulative):
    kind = "sum"


@register_converter("CumProd")
class CumProd(_Cumulative):
    kind = "prod"


# ---- TopK ----------------------------------------------------------------------------------------------------------

@register_converter("TopK")
class TopK(Converter):
    """Largest/smallest k along an axis, ties broken towards the lower index (what ONNX specifies)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return cls._topk(bb, inputs[0], attr["k"], attr.get("axis", -1), True)

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        return cls._topk(bb, inputs[0], inputs[1], attr.get("axis", -1), True)

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        return cls._topk(bb, inputs[0], inputs[1], attr.get("axis", -1), bool(attr.get("largest", 1)))

    @classmethod
    def _topk(cls, bb, x, k, axis, largest):
        r = ndim(x)
        axis = normalize_axis(axis, r)
        k = k if isinstance(k, int) else scalar_dim(bb, k, "topk")
        # A stable argsort of the keys (negated for largest) keeps equal values in index order.
        keys = x
        dt = dtype(x)
        if dt == "uint64":  # the sort kernel takes no uint64: flip the sign bit, reinterpret as int64
            keys = bb.emit(R.astype(R.bitwise_xor(x, relax.const(1 << 63, dt)), I64))
        elif dt.startswith("uint"):
            keys = bb.emit(R.astype(x, I64))
        if largest:  # ~k orders exactly opposite to k and cannot overflow; floats negate
            keys = bb.emit(R.negative(keys) if dt.startswith(("float", "bfloat")) else R.bitwise_not(keys))
        order = bb.emit(R.argsort(keys, axis=axis, descending=False, dtype=I64))
        dims = shape_of(x)
        out_dims = list(dims) if dims is not None else bind_dims(bb, shape_tensor(bb, x), "topk_in")
        out_dims[axis] = k

        def take_k(data, idx):
            sel = te.compute([prim(d) for d in out_dims], lambda *o: idx(*o), name="topk_indices")
            val = te.compute([prim(d) for d in out_dims],
                             lambda *o: data(*[sel(*o) if i == axis else o[i] for i in range(r)]),
                             name="topk_values")
            return [val, sel]

        res = emit_te(bb, take_k, x, order, name="topk_gather")
        return [bb.emit(relax.TupleGetItem(res, 0)), bb.emit(relax.TupleGetItem(res, 1))]

