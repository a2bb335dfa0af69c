"""Shape-manipulating ops whose shape operands may be known, symbolic or run-time tensors.

Reshape, Expand, ConstantOfShape, Tile, Range, Squeeze, Unsqueeze, Slice, Pad, Split, Shape, Size. TVM's
converters want these operands as constants; here a known operand (constant or symbolic, see
``common.known_dims``) gives a kernel with those dims, and a run-time operand gives a kernel whose output dims
are computed at run time (``common.bind_dims``), so ``Reshape(x, s)`` with ``s`` a graph input compiles once.
"""

from __future__ import annotations

import numpy as np
import onnx
import tvm.sym
from tvm import relax, te, tirx
from tvm.relax import op as R

from ..converters import Converter, register_converter
from ..values import const, simplify
from .common import (
    bind_dims,
    dims_of,
    dims_tensor,
    dtype,
    emit_te,
    int64_vector,
    ints,
    known_dims,
    ndim,
    normalize_axis,
    prim,
    prod,
    shape_of,
    shape_tensor,
    static_ints,
    te_int,
    vector_length,
)

I64 = "int64"


def _i64(v: int) -> relax.Expr:
    return relax.const(v, I64)


# ---- Shape, Size --------------------------------------------------------------------------------------------------

@register_converter("Shape")
class Shape(Converter):
    """Run-time shape (the importer answers Shape itself whenever Relax knows the dims)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        t = shape_tensor(bb, inputs[0])
        r = ndim(inputs[0])
        start, end = attr.get("start", 0), attr.get("end", r)
        s = min(max(start + r if start < 0 else start, 0), r)
        e = min(max(end + r if end < 0 else end, 0), r)
        if (s, e) == (0, r):
            return t
        return R.strided_slice(t, [0], [s], [max(e, s)])


@register_converter("Size")
class Size(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return R.prod(shape_tensor(bb, inputs[0]))


# ---- Reshape -------------------------------------------------------------------------------------------------------

def _resolve_reshape(in_dims: list, target: list, allowzero: bool) -> list:
    """ONNX Reshape semantics on known dims: 0 copies the input dim (unless allowzero), -1 is inferred."""
    out = [in_dims[i] if (t == 0 and not allowzero and isinstance(t, int)) else t for i, t in enumerate(target)]
    minus = [i for i, t in enumerate(out) if isinstance(t, int) and t == -1]
    if len(minus) > 1:
        raise ValueError("Reshape: more than one -1 in the target shape")
    if minus:
        rest = prod([t for i, t in enumerate(out) if i != minus[0]])
        out[minus[0]] = simplify(tirx.floordiv(prim(prod(in_dims)), prim(rest))) if not (
            isinstance(rest, int) and isinstance(prod(in_dims), int)) else (prod(in_dims) // rest if rest else 0)
    return out


@register_converter("Reshape")
class Reshape(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return cls._reshape(bb, inputs[0], list(attr["shape"]), False)

    @classmethod
    def _impl_v5(cls, bb, inputs, attr, params):
        return cls._impl_v14(bb, inputs, attr, params)

    @classmethod
    def _impl_v14(cls, bb, inputs, attr, params):
        allowzero = bool(attr.get("allowzero", 0))
        target = known_dims(inputs[1])
        if target is not None:
            return cls._reshape(bb, inputs[0], target, allowzero)
        return cls._runtime(bb, inputs[0], inputs[1], allowzero)

    @classmethod
    def _reshape(cls, bb, x, target, allowzero):
        dims = shape_of(x)
        if dims is None:
            return cls._runtime(bb, x, dims_tensor(bb, target), allowzero)
        return R.reshape(x, relax.ShapeExpr([prim(d) for d in _resolve_reshape(dims, target, allowzero)]))

    @classmethod
    def _runtime(cls, bb, x, shape, allowzero):
        s = int64_vector(bb, shape)
        k = vector_length(s)
        xs = shape_tensor(bb, x)
        r = ndim(x)
        if not allowzero and r:
            idx = ints(np.minimum(np.arange(k), r - 1).astype(I64))
            s = bb.emit(R.where(R.equal(s, _i64(0)), R.take(xs, idx, axis=0), s))
        numel = bb.emit(R.prod(xs))
        known_part = bb.emit(R.prod(R.where(R.equal(s, _i64(-1)), _i64(1), s)))
        inferred = bb.emit(R.where(R.equal(known_part, _i64(0)), _i64(0), R.floor_divide(numel, R.maximum(known_part, _i64(1)))))
        s = bb.emit(R.where(R.equal(s, _i64(-1)), inferred, s))
        return R.reshape(x, relax.ShapeExpr(bind_dims(bb, s, "reshape")))


# ---- Expand, ConstantOfShape, Tile -----------------------------------------------------------------------------------

def _broadcast_dim(a, b):
    if isinstance(a, int) and a == 1:
        return b
    if isinstance(b, int) and b == 1:
        return a
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ValueError(f"cannot broadcast dims {a} and {b}")
        return a
    if not isinstance(a, int) and not isinstance(b, int) and tvm.sym.Analyzer().can_prove_equal(a, b):
        return a
    return simplify(tirx.Select(tirx.EQ(prim(b), prim(1)), prim(a), prim(b)))


@register_converter("Expand")
class Expand(Converter):
    @classmethod
    def _impl_v8(cls, bb, inputs, attr, params):
        x = inputs[0]
        target = known_dims(inputs[1])
        dims = shape_of(x)
        if target is not None and dims is not None:
            n = max(len(target), len(dims))
            a = [1] * (n - len(dims)) + list(dims)
            b = [1] * (n - len(target)) + list(target)
            out = [_broadcast_dim(p, q) for p, q in zip(a, b)]
            return R.broadcast_to(x, relax.ShapeExpr([prim(d) for d in out]))
        s = int64_vector(bb, inputs[1]) if target is None else dims_tensor(bb, target)
        k = vector_length(s)
        r = ndim(x)
        n = max(k, r)
        xs = shape_tensor(bb, x)
        if n > r:
            xs = bb.emit(R.concat([ints(np.ones(n - r, I64)), xs]))
        if n > k:
            s = bb.emit(R.concat([ints(np.ones(n - k, I64)), s]))
        out = bb.emit(R.where(R.equal(s, _i64(1)), xs, s))
        bound = bind_dims(bb, out, "expand")
        # Where x has a static dim other than 1, broadcasting leaves no choice: the output dim is that dim.
        if dims is not None:
            lead = n - r
            bound = [dims[i - lead] if i >= lead and isinstance(dims[i - lead], int) and dims[i - lead] != 1 else v
                     for i, v in enumerate(bound)]
        return R.broadcast_to(x, relax.ShapeExpr([prim(d) for d in bound]))


@register_converter("ConstantOfShape")
class ConstantOfShape(Converter):
    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        value = attr.get("value")
        arr = np.zeros(1, "float32") if value is None else onnx.numpy_helper.to_array(value)
        fill = const(arr.reshape(()))
        dims = dims_of(bb, inputs[0], "full")
        return R.broadcast_to(fill, relax.ShapeExpr([prim(d) for d in dims]))


@register_converter("Tile")
class Tile(Converter):
    @classmethod
    def _impl_v6(cls, bb, inputs, attr, params):
        x = inputs[0]
        reps = static_ints(inputs[1])
        if reps is not None:
            return R.tile(x, reps)
        r = ndim(x)
        dims = shape_of(x)
        known = known_dims(inputs[1])
        if known is not None and dims is not None:
            out = [simplify(prim(d) * prim(k)) for d, k in zip(dims, known)]
        else:
            out_t = bb.emit(R.multiply(shape_tensor(bb, x), int64_vector(bb, inputs[1])))
            out = bind_dims(bb, out_t, "tile")

        def tile(t):
            return te.compute([prim(d) for d in out],
                              lambda *o: t[tuple(tirx.floormod(o[i], t.shape[i]) for i in range(r))], name="tile")

        return emit_te(bb, tile, x, name="tile_dynamic")


# ---- Range ---------------------------------------------------------------------------------------------------------

@register_converter("Range")
class Range(Converter):
    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        start, limit, delta = inputs
        out_dtype = dtype(start)
        ks, kl, kd = (known_dims(v) if dtype(v).startswith(("int", "uint")) else None for v in inputs)
        if ks is not None and kl is not None and kd is not None:
            s, lim, d = ks[0], kl[0], kd[0]
            if isinstance(d, int) and d != 0:
                diff = prim(lim) - prim(s)
                n = simplify(tirx.max(tirx.floordiv(diff + prim(d - 1 if d > 0 else d + 1), prim(d)), prim(0)))
                return cls._emit(bb, n, start, delta, out_dtype)
        # run time: n = max(ceil((limit - start) / delta), 0), computed in float64 like the reference does
        f = [bb.emit(R.astype(R.reshape(v, [1]), "float64")) for v in inputs]
        n = bb.emit(R.astype(R.maximum(R.ceil(R.divide(R.subtract(f[1], f[0]), f[2])), relax.const(0.0, "float64")),
                             I64))
        return cls._emit(bb, bind_dims(bb, n, "range")[0], start, delta, out_dtype)

    @staticmethod
    def _emit(bb, n, start, delta, out_dtype):
        def arange(s, d):
            return te.compute([prim(n)], lambda i: s() + tirx.Cast(out_dtype, i) * d(), name="range")

        return emit_te(bb, arange, start, delta, name="range")


# ---- Squeeze, Unsqueeze --------------------------------------------------------------------------------------------

def _axes_operand(inputs, attr, index: int, opset_input: bool):
    """(static axes or None, run-time axes tensor or None, present?)"""
    if not opset_input:
        axes = attr.get("axes")
        return (list(axes) if axes is not None else None), None
    if len(inputs) <= index or inputs[index] is None:
        return None, None
    k = static_ints(inputs[index])
    return (k, None) if k is not None else (None, inputs[index])


class _SqueezeBase(Converter):
    opset_with_input = 13

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return cls._convert(bb, inputs, attr, False)

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        return cls._convert(bb, inputs, attr, True)


@register_converter("Squeeze")
class Squeeze(_SqueezeBase):
    @classmethod
    def _convert(cls, bb, inputs, attr, opset_input):
        x = inputs[0]
        axes, rt = _axes_operand(inputs, attr, 1, opset_input)
        dims = shape_of(x)
        r = ndim(x)
        if rt is None:
            if axes is None:  # the dims known to be 1 (a symbolic dim is taken to be > 1: ranks are static)
                if dims is None:
                    raise ValueError("Squeeze without axes needs the input shape to be known")
                axes = [i for i, d in enumerate(dims) if isinstance(d, int) and d == 1]
            axes = sorted({normalize_axis(a, r) for a in axes})
            if dims is not None:
                return R.reshape(x, relax.ShapeExpr([prim(d) for i, d in enumerate(dims) if i not in axes]))
            return R.squeeze(x, axes)
        n = vector_length(rt)
        ax = bb.emit(R.where(R.less(int64_vector(bb, rt), _i64(0)), R.add(int64_vector(bb, rt), _i64(r)),
                             int64_vector(bb, rt)))
        pos = ints(np.arange(r, dtype=I64).reshape(r, 1))
        squeezed = bb.emit(R.sum(R.astype(R.equal(pos, R.reshape(ax, [1, n])), I64), axis=[1]))
        order = bb.emit(R.argsort(R.add(R.multiply(squeezed, _i64(r)), ints(np.arange(r, dtype=I64))),
                                  dtype=I64))
        kept = bb.emit(R.strided_slice(order, [0], [0], [r - n]))
        out = bb.emit(R.take(shape_tensor(bb, x), kept, axis=0))
        return R.reshape(x, relax.ShapeExpr(bind_dims(bb, out, "squeeze")))


@register_converter("Unsqueeze")
class Unsqueeze(_SqueezeBase):
    @classmethod
    def _convert(cls, bb, inputs, attr, opset_input):
        x = inputs[0]
        axes, rt = _axes_operand(inputs, attr, 1, opset_input)
        r = ndim(x)
        dims = shape_of(x)
        if rt is None:
            rank = r + len(axes)
            axes = sorted(normalize_axis(a, rank) for a in axes)
            if dims is None:
                return R.expand_dims(x, axes)
            it = iter(dims)
            out = [1 if i in axes else next(it) for i in range(rank)]
            return R.reshape(x, relax.ShapeExpr([prim(d) for d in out]))
        n = vector_length(rt)
        rank = r + n
        a = int64_vector(bb, rt)
        ax = bb.emit(R.where(R.less(a, _i64(0)), R.add(a, _i64(rank)), a))
        pos = ints(np.arange(rank, dtype=I64).reshape(rank, 1))
        new = bb.emit(R.sum(R.astype(R.equal(pos, R.reshape(ax, [1, n])), I64), axis=[1]))
        src = bb.emit(R.subtract(ints(np.arange(rank, dtype=I64)), R.cumsum(new, axis=0)))
        src = bb.emit(R.minimum(R.maximum(src, _i64(0)), _i64(max(r - 1, 0))))
        xs = shape_tensor(bb, x) if r else ints(np.ones(1, I64))
        out = bb.emit(R.where(R.greater(new, _i64(0)), _i64(1), R.take(xs, src, axis=0)))
        return R.reshape(x, relax.ShapeExpr(bind_dims(bb, out, "unsqueeze")))


# ---- Slice ---------------------------------------------------------------------------------------------------------

def _slice_known(d, s, e, st):
    """Normalized (start, length) for one axis from known start/end/step (ints or TIR expressions)."""
    d, s, e = prim(d), prim(s), prim(e)
    if isinstance(st, int) and st > 0:
        s = tirx.Select(s < 0, s + d, s)
        e = tirx.Select(e < 0, e + d, e)
        s = tirx.min(tirx.max(s, prim(0)), d)
        e = tirx.min(tirx.max(e, prim(0)), d)
        n = tirx.max(tirx.floordiv(e - s + prim(st - 1), prim(st)), prim(0))
    else:
        s = tirx.Select(s < 0, s + d, s)
        e = tirx.Select(e < 0, e + d, e)
        s = tirx.min(tirx.max(s, prim(0)), d - 1)
        e = tirx.min(tirx.max(e, prim(-1)), d - 1)
        n = tirx.max(tirx.floordiv(s - e + prim(-st - 1), prim(-st)), prim(0))
    return simplify(s), simplify(n)


def _scatter_axes(bb, r: int, ax: relax.Expr, vals: relax.Expr, default: relax.Expr) -> relax.Expr:
    """A length-r vector: vals[k] at position ax[k], default elsewhere (all run-time int64 tensors)."""
    k = vector_length(ax)
    m = bb.emit(R.astype(R.equal(ints(np.arange(r, dtype=I64).reshape(r, 1)), R.reshape(ax, [1, k])), I64))
    hit = bb.emit(R.sum(m, axis=[1]))
    picked = bb.emit(R.sum(R.multiply(m, R.reshape(vals, [1, k])), axis=[1]))
    return bb.emit(R.add(picked, R.multiply(R.subtract(_i64(1), hit), default)))


def _slice_kernel(bb, x, starts, steps, out_dims):
    """x[start_i + o_i * step_i]; starts/steps are lists of TIR values or run-time int64 vectors."""
    r = len(out_dims)

    def kernel(t, *vecs):
        st = vecs[0] if isinstance(starts, relax.Expr) else None
        sp = vecs[-1] if isinstance(steps, relax.Expr) else None

        def f(*o):
            idx = []
            for i in range(r):
                s = te_int(st, i) if st is not None else prim(starts[i])
                p = te_int(sp, i) if sp is not None else prim(steps[i])
                idx.append(s + o[i] * p)
            return t[tuple(idx)]

        return te.compute([prim(d) for d in out_dims], f, name="slice")

    args = [v for v in (starts, steps) if isinstance(v, relax.Expr)]
    return emit_te(bb, kernel, x, *args, name="slice_dynamic")


@register_converter("Slice")
class Slice(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        starts, ends = list(attr["starts"]), list(attr["ends"])
        axes = list(attr.get("axes", range(len(starts))))
        return cls._known(bb, inputs[0], starts, ends, axes, [1] * len(starts))

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x = inputs[0]
        ops = [inputs[i] if len(inputs) > i else None for i in range(1, 5)]
        vals = [known_dims(v) if v is not None else None for v in ops]
        starts, ends, axes, steps = vals
        n = len(starts) if starts is not None else vector_length(int64_vector(bb, ops[0]))
        if ops[2] is None:
            axes = list(range(n))
        if ops[3] is None:
            steps = [1] * n
        axes_static = axes is not None and all(isinstance(a, int) for a in axes)
        steps_static = steps is not None and all(isinstance(s, int) for s in steps)
        if starts is not None and ends is not None and axes_static and steps_static and shape_of(x) is not None:
            return cls._known(bb, x, starts, ends, axes, steps)
        return cls._runtime(bb, x, ops, n)

    @classmethod
    def _known(cls, bb, x, starts, ends, axes, steps):
        r = ndim(x)
        dims = shape_of(x)
        axes = [normalize_axis(a, r) for a in axes]
        if any(s == 0 for s in steps):
            raise ValueError("Slice steps must be non-zero")
        full_start, full_step = [0] * r, [1] * r
        out = list(dims)
        for a, s, e, st in zip(axes, starts, ends, steps):
            full_start[a], out[a] = _slice_known(dims[a], s, e, st)
            full_step[a] = st
        if all(isinstance(v, int) for v in full_start + out) and all(v == 1 for v in full_step):
            return R.strided_slice(x, list(range(r)), full_start, [s + n for s, n in zip(full_start, out)],
                                   assume_inbound=True)
        return _slice_kernel(bb, x, full_start, full_step, out)

    @classmethod
    def _runtime(cls, bb, x, ops, n):
        r = ndim(x)
        xs = shape_tensor(bb, x)
        st = int64_vector(bb, ops[0] if ops[0] is not None else ints(np.zeros(n, I64)))
        en = int64_vector(bb, ops[1])
        ax = int64_vector(bb, ops[2]) if ops[2] is not None else ints(np.arange(n, dtype=I64))
        sp = int64_vector(bb, ops[3]) if ops[3] is not None else ints(np.ones(n, I64))
        ax = bb.emit(R.where(R.less(ax, _i64(0)), R.add(ax, _i64(r)), ax))
        d = bb.emit(R.take(xs, ax, axis=0))
        zero, one = _i64(0), _i64(1)
        st = bb.emit(R.where(R.less(st, zero), R.add(st, d), st))
        en = bb.emit(R.where(R.less(en, zero), R.add(en, d), en))
        pos = bb.emit(R.greater(sp, zero))
        dm1 = bb.emit(R.subtract(d, one))
        st = bb.emit(R.where(pos, R.minimum(R.maximum(st, zero), d), R.minimum(R.maximum(st, zero), dm1)))
        en = bb.emit(R.where(pos, R.minimum(R.maximum(en, zero), d), R.minimum(R.maximum(en, _i64(-1)), dm1)))
        span = bb.emit(R.where(pos, R.subtract(en, st), R.subtract(st, en)))
        asp = bb.emit(R.abs(sp))
        ln = bb.emit(R.maximum(R.floor_divide(R.add(span, R.subtract(asp, one)), asp), zero))
        full_start = _scatter_axes(bb, r, ax, st, ints(np.zeros(r, I64)))
        full_step = _scatter_axes(bb, r, ax, sp, ints(np.ones(r, I64)))
        full_len = _scatter_axes(bb, r, ax, ln, xs)
        return _slice_kernel(bb, x, full_start, full_step, bind_dims(bb, full_len, "slice"))


# ---- Pad -----------------------------------------------------------------------------------------------------------

def _pad_kernel(bb, x, before, out_dims, mode: str, value):
    """Pad with known (TIR) or run-time (int64 vector) ``before`` amounts; ``value`` a Relax scalar or None."""
    r = len(out_dims)
    dims_in = shape_of(x)

    def kernel(t, *rest):
        b_t = rest[0] if isinstance(before, relax.Expr) else None
        v_t = rest[-1] if value is not None else None

        def f(*o):
            src, inside = [], []
            for i in range(r):
                b = te_int(b_t, i) if b_t is not None else prim(before[i])
                d = prim(t.shape[i])
                s = o[i] - b
                if mode == "edge":
                    s = tirx.min(tirx.max(s, prim(0)), d - 1)
                elif mode == "reflect":
                    period = tirx.max(prim(2) * (d - 1), prim(1))
                    m = tirx.floormod(s, period)
                    s = tirx.Select(m < d, m, period - m)
                elif mode == "wrap":
                    s = tirx.floormod(s, d)
                else:
                    inside.append(tirx.all(s >= 0, s < d))
                    s = tirx.min(tirx.max(s, prim(0)), tirx.max(d - 1, prim(0)))
                src.append(s)
            v = t[tuple(src)]
            if inside:
                fill = v_t() if v_t is not None else tirx.const(0, str(t.dtype))
                return tirx.Select(tirx.all(*inside), v, fill)
            return v

        return te.compute([prim(d) for d in out_dims], f, name="pad")

    del dims_in
    args = [a for a in (before if isinstance(before, relax.Expr) else None, value) if a is not None]
    return emit_te(bb, kernel, x, *args, name=f"pad_{mode}")


@register_converter("Pad")
class Pad(Converter):
    @classmethod
    def _impl_v2(cls, bb, inputs, attr, params):
        pads = list(attr.get("pads", attr.get("paddings", [])))
        value = relax.const(float(attr.get("value", 0.0)), dtype(inputs[0]))
        return cls._pad(bb, inputs[0], pads, None, attr.get("mode", b"constant"), value)

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x = inputs[0]
        value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        if value is not None and ndim(value) != 0:
            value = bb.emit(R.reshape(value, []))
        axes = inputs[3] if len(inputs) > 3 else None
        return cls._pad(bb, x, inputs[1], axes, attr.get("mode", b"constant"), value)

    @classmethod
    def _pad(cls, bb, x, pads, axes, mode, value):
        mode = mode.decode() if isinstance(mode, bytes) else mode
        r = ndim(x)
        dims = shape_of(x)
        if mode == "constant" and value is None:
            value = relax.const(0, dtype(x))
        kp = pads if isinstance(pads, list) else known_dims(pads)
        kax = list(range(r)) if axes is None else known_dims(axes)
        if kp is not None and kax is not None and dims is not None:
            kax = [normalize_axis(a, r) for a in kax]
            n = len(kax)
            before, after = [0] * r, [0] * r
            for j, a in enumerate(kax):
                before[a], after[a] = kp[j], kp[j + n]
            out = [simplify(prim(d) + prim(b) + prim(a)) for d, b, a in zip(dims, before, after)]
            return _pad_kernel(bb, x, before, out, mode, value if mode == "constant" else None)
        p = int64_vector(bb, pads if isinstance(pads, relax.Expr) else dims_tensor(bb, pads))
        n = vector_length(p) // 2
        ax = (ints(np.arange(r, dtype=I64)) if axes is None else int64_vector(bb, axes))
        ax = bb.emit(R.where(R.less(ax, _i64(0)), R.add(ax, _i64(r)), ax))
        b = bb.emit(R.strided_slice(p, [0], [0], [n]))
        a = bb.emit(R.strided_slice(p, [0], [n], [2 * n]))
        zeros = ints(np.zeros(r, I64))
        full_b = _scatter_axes(bb, r, ax, b, zeros)
        full_a = _scatter_axes(bb, r, ax, a, zeros)
        out = bb.emit(R.add(R.add(shape_tensor(bb, x), full_b), full_a))
        return _pad_kernel(bb, x, full_b, bind_dims(bb, out, "pad"), mode, value if mode == "constant" else None)


# ---- Split ---------------------------------------------------------------------------------------------------------

@register_converter("Split")
class Split(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        split = attr.get("split")
        if split is None and len(inputs) > 1 and inputs[1] is not None:
            split = inputs[1]
        return cls._split(bb, inputs[0], split, attr)

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        return cls._split(bb, inputs[0], inputs[1] if len(inputs) > 1 else None, attr)

    @classmethod
    def _split(cls, bb, x, split, attr):
        r = ndim(x)
        axis = normalize_axis(attr.get("axis", 0), r)
        n_out = attr["tvm_custom"]["num_outputs"]
        dims = shape_of(x)
        d = dims[axis] if dims is not None else None
        sizes = list(split) if isinstance(split, (list, tuple)) else (known_dims(split) if split is not None else None)
        if sizes is None and split is None:
            n = attr.get("num_outputs", n_out)
            if d is None:
                raise ValueError("Split into equal parts needs the split axis to be known")
            chunk = simplify(tirx.ceildiv(prim(d), prim(n))) if not isinstance(d, int) else -(-d // n)
            sizes = [chunk] * (n - 1) + [simplify(prim(d) - prim(chunk) * (n - 1))]
        if sizes is not None:
            if all(isinstance(s, int) for s in sizes):
                indices = list(np.cumsum(sizes)[:-1])
                return R.split(x, [int(i) for i in indices], axis=axis)
            offsets, outs, acc = [], [], 0
            for s in sizes:
                offsets.append(acc)
                acc = simplify(prim(acc) + prim(s))
            for off, s in zip(offsets, sizes):
                starts = [0] * r
                starts[axis] = off
                out = list(dims)
                out[axis] = s
                outs.append(_slice_kernel(bb, x, starts, [1] * r, out))
            return outs
        s = int64_vector(bb, split)
        n = vector_length(s)
        sizes = bind_dims(bb, s, "split")
        offs = bb.emit(R.subtract(R.cumsum(s, axis=0), s))
        outs = []
        xs_dims = dims if dims is not None else None
        for i in range(n):
            start_vec = _scatter_axes(bb, r, ints(np.array([axis], I64)),
                                      R.strided_slice(offs, [0], [i], [i + 1]), ints(np.zeros(r, I64)))
            out = list(xs_dims) if xs_dims is not None else bind_dims(bb, shape_tensor(bb, x), "split_in")
            out[axis] = sizes[i]
            outs.append(_slice_kernel(bb, x, start_vec, [1] * r, out))
        return outs

