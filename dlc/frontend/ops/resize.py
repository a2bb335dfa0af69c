"""Resize and Upsample with ONNX's exact coordinate semantics, and scales/sizes known or computed at run time.

TVM's resize derives its scale from the size ratio, which differs from ONNX whenever ``scales`` do not divide
the input exactly (0.6 x 4 -> 2 outputs, sampled with scale 0.6, not 0.5); it also lacks antialias,
``keep_aspect_ratio_policy`` and run-time scales. Here each resized axis is one kernel, as in onnx's
reference: per output index a small table of source indices and weights (nearest, linear or cubic taps,
antialiased or not, ``exclude_outside`` renormalized), then ``out = sum_k w[o, k] * x[.., idx[o, k], ..]``.
Coordinates and weights are computed in float64 like the reference; integer outputs round and saturate.
"""

from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx
from tvm.relax import op as R

from ..converters import Converter, register_converter
from .common import (
    bind_dims,
    dtype,
    emit_te,
    known_dims,
    ndim,
    normalize_axis,
    shape_of,
    shape_tensor,
    static,
)

F64 = "float64"


def _f(v):
    return tirx.const(float(v), F64) if isinstance(v, (int, float, np.floating, np.integer)) else v


def _param(p, tensors, i):
    """A float64 scalar parameter: a Python number, or element i of a run-time tensor."""
    if isinstance(p, relax.Expr):
        v = tensors[p](i) if ndim(p) else tensors[p]()
        return tirx.Cast(F64, v)
    return _f(p[i] if isinstance(p, (list, tuple)) else p)


class _Spec:
    """What one resize needs besides the data: everything static but scales/roi/out dims."""

    def __init__(self, attr, opset):
        def s(name, default):
            v = attr.get(name, default)
            return v.decode() if isinstance(v, bytes) else v

        self.mode = s("mode", "nearest")
        self.coord = s("coordinate_transformation_mode", "half_pixel" if opset >= 11 else "asymmetric")
        self.nearest = s("nearest_mode", "round_prefer_floor" if opset >= 11 else "floor")
        self.a = float(attr.get("cubic_coeff_a", -0.75))
        self.exclude = bool(attr.get("exclude_outside", 0))
        self.extrapolation = float(attr.get("extrapolation_value", 0.0))
        self.antialias = bool(attr.get("antialias", 0)) and self.mode != "nearest"
        self.policy = s("keep_aspect_ratio_policy", "stretch")


def _x_original(spec: _Spec, y, s, d: int | tirx.PrimExpr, out_int, roi0, roi1):
    d = _f(d) if isinstance(d, int) else tirx.Cast(F64, d)
    out_w = s * d
    half = _f(0.5)
    c = spec.coord
    if c == "align_corners":
        return tirx.Select(out_w == _f(1), _f(0), y * (d - _f(1)) / (out_w - _f(1)))
    if c == "asymmetric":
        return y / s
    if c == "tf_crop_and_resize":
        x = tirx.Select(out_w == _f(1), (roi1 - roi0) * (d - _f(1)) / _f(2),
                        y * (roi1 - roi0) * (d - _f(1)) / (out_w - _f(1)))
        return x + roi0 * (d - _f(1))
    if c == "pytorch_half_pixel":
        return tirx.Select(out_w == _f(1), _f(-0.5), (y + half) / s - half)
    if c == "half_pixel":
        return (y + half) / s - half
    if c == "half_pixel_symmetric":
        adjustment = tirx.Cast(F64, out_int) / out_w
        center = d / _f(2)
        return center * (_f(1) - adjustment) + (y + half) / s - half
    raise ValueError(f"Resize: unknown coordinate_transformation_mode {c!r}")


def _cubic(a: float, x):
    x = tirx.abs(x)
    x2, x3 = x * x, x * x * x
    a_ = _f(a)
    return tirx.Select(x <= _f(1), (a_ + _f(2)) * x3 - (a_ + _f(3)) * x2 + _f(1),
                       tirx.Select(x < _f(2), a_ * x3 - _f(5) * a_ * x2 + _f(8) * a_ * x - _f(4) * a_, _f(0)))


def _resize_axis(bb, x, axis: int, out_dim, scale, roi, spec: _Spec, in_dim_hint: int | None):
    """One axis: out_dim outputs from scale (number or run-time float64 scalar tensor) and roi (pair or tensor)."""
    dims = shape_of(x)
    r = ndim(x)
    d_static = dims[axis] if dims is not None and isinstance(dims[axis], int) else None
    if spec.mode == "nearest":
        taps = 1
    elif not spec.antialias:
        taps = 2 if spec.mode == "linear" else 4
    else:  # antialias: the footprint grows as 1/scale; bound it by what the input can need
        radius = 1 if spec.mode == "linear" else 2
        s_known = scale if isinstance(scale, float) else None
        if s_known is not None:
            i_start = int(np.floor(-radius / min(s_known, 1.0)) + 1)
            taps = 2 - 2 * i_start
        elif d_static is not None:
            taps = 2 * radius * (d_static + 1) + 2
        else:
            raise ValueError("antialiased Resize with a run-time scale needs the resized dim to be known")
    tensors = [p for p in (scale, roi) if isinstance(p, relax.Expr)]
    out_dtype = dtype(x)

    def kernel(t, *ts):
        tmap = dict(zip(tensors, ts))
        s = _param(scale, tmap, 0)
        roi0 = _param(roi, tmap, 0) if roi is not None else _f(0)
        roi1 = _param(roi, tmap, 1) if roi is not None else _f(1)
        d = t.shape[axis]
        dl = tirx.Cast("int64", d)

        def x_ori(o):
            return _x_original(spec, tirx.Cast(F64, o), s, d, out_dim, roi0, roi1)

        def start_and_ratio(o):
            xo = x_ori(o)
            i0 = tirx.Cast("int64", tirx.ceil(xo)) - 1
            return xo, i0, xo - tirx.Cast(F64, i0)

        k_ax = te.reduce_axis((0, taps), name="k")

        def raw(o, k):
            xo, i0, ratio = start_and_ratio(o)
            if spec.mode == "nearest":
                return _f(1)
            if spec.antialias:
                radius = 1 if spec.mode == "linear" else 2
                sc = tirx.min(s, _f(1))
                i_start = tirx.Cast("int64", tirx.floor(_f(-radius) / sc)) + 1
                n = 2 - 2 * i_start
                arg = sc * (tirx.Cast(F64, i_start + k) - ratio)
                w = tirx.max(_f(1) - tirx.abs(arg), _f(0)) if spec.mode == "linear" else _cubic(spec.a, arg)
                w = tirx.Select(k < n, w, _f(0))
            elif spec.mode == "linear":
                w = tirx.Select(k == 0, _f(1) - ratio, ratio)
            else:
                # taps at i0-1 .. i0+2 with distances 1+ratio, ratio, 1-ratio, 2-ratio
                dist = tirx.Select(k == 0, _f(1) + ratio, tirx.Select(k == 1, ratio, tirx.Select(
                    k == 2, _f(1) - ratio, _f(2) - ratio)))
                w = _cubic(spec.a, dist)
            if spec.exclude:
                idx = index_unclamped(o, k)
                w = tirx.Select(tirx.all(idx >= 0, idx < dl), w, _f(0))
            return w

        def index_unclamped(o, k):
            xo, i0, ratio = start_and_ratio(o)
            if spec.mode == "nearest":
                nm = spec.nearest
                if nm == "round_prefer_floor":
                    step = tirx.Select(ratio > _f(0.5), 1, 0)
                elif nm == "round_prefer_ceil":
                    step = tirx.Select(ratio >= _f(0.5), 1, 0)
                elif nm == "floor":
                    step = tirx.Select(ratio == _f(1), 1, 0)
                else:
                    step = tirx.const(1, "int32")
                return i0 + tirx.Cast("int64", step)
            if spec.antialias:
                radius = 1 if spec.mode == "linear" else 2
                sc = tirx.min(s, _f(1))
                i_start = tirx.Cast("int64", tirx.floor(_f(-radius) / sc)) + 1
                n = 2 - 2 * i_start
                return i0 - (n // 2 - 1) + k
            return i0 - (taps // 2 - 1) + k

        o_dim = out_dim
        w = te.compute((o_dim, taps), lambda o, k: raw(o, k), name="resize_weight")
        idx = te.compute((o_dim, taps), lambda o, k: tirx.min(tirx.max(index_unclamped(o, k), tirx.const(0, "int64")),
                                                              dl - 1), name="resize_index")
        if spec.antialias or spec.exclude:
            kk = te.reduce_axis((0, taps), name="kk")
            den = te.compute((o_dim,), lambda o: te.sum(w[o, kk], axis=kk), name="resize_norm")
        else:
            den = None
        out_shape = [o_dim if i == axis else t.shape[i] for i in range(r)]

        def acc(*i):
            o = i[axis]
            src = [idx[o, k_ax] if j == axis else i[j] for j in range(r)]
            weight = w[o, k_ax] if den is None else w[o, k_ax] / tirx.Select(den[o] == _f(0), _f(1), den[o])
            return te.sum(weight * tirx.Cast(F64, t(*src)), axis=k_ax)

        total = te.compute(out_shape, acc, name="resize_acc")

        def finish(*i):
            v = total(*i)
            if spec.coord == "tf_crop_and_resize":
                xo = x_ori(i[axis])
                v = tirx.Select(tirx.any(xo < _f(0), xo > tirx.Cast(F64, d) - _f(1)), _f(spec.extrapolation), v)
            if out_dtype.startswith(("int", "uint")):
                info = np.iinfo(out_dtype)
                v = tirx.min(tirx.max(tirx.nearbyint(v), _f(info.min)), _f(info.max))
            return tirx.Cast(out_dtype, v)

        return te.compute(out_shape, finish, name="resize")

    del in_dim_hint
    return emit_te(bb, kernel, x, *tensors, name=f"resize_{spec.mode}")


def _as_f64_vector(bb, e):
    return bb.emit(R.astype(R.reshape(e, [-1]), F64))


def resize(bb, x, roi, scales, sizes, axes, spec: _Spec):
    r = ndim(x)
    axes = [normalize_axis(a, r) for a in axes] if axes is not None else list(range(r))
    dims = shape_of(x)
    n = len(axes)
    roi_k = static(roi) if roi is not None else None
    if roi is not None and roi_k is not None and roi_k.size == 0:
        roi = roi_k = None
    roi_pairs: list = [None] * r
    if spec.coord == "tf_crop_and_resize" and roi is not None:
        if roi_k is not None:
            flat = roi_k.reshape(-1).astype(np.float64)
            m = flat.size // 2
            for j, a in enumerate(axes if m == n else range(r)):
                roi_pairs[a] = (float(flat[j]), float(flat[j + m]))
        else:
            rv = _as_f64_vector(bb, roi)
            m = int(shape_of(rv)[0]) // 2
            for j, a in enumerate(axes if m == n else range(r)):
                roi_pairs[a] = bb.emit(R.concat([R.strided_slice(rv, [0], [j], [j + 1]),
                                                 R.strided_slice(rv, [0], [j + m], [j + m + 1])]))
    # per resized axis: (out dim, scale)
    out_dims: dict[int, object] = {}
    scale_of: dict[int, object] = {}
    sz = known_dims(sizes) if sizes is not None else None
    sc = static(scales) if scales is not None else None
    if sizes is not None and (sz is None or len(sz) > 0):
        if sz is not None and dims is not None and all(isinstance(v, int) for v in sz) and all(
                isinstance(dims[a], int) for a in axes):
            sz = sz if len(sz) == n else [sz[a] for a in axes]
            ratios = [sz[j] / dims[a] for j, a in enumerate(axes)]
            if spec.policy != "stretch":
                s = min(ratios) if spec.policy == "not_larger" else max(ratios)
                for a in axes:
                    out_dims[a], scale_of[a] = int(s * dims[a] + 0.5), s
            else:
                for j, a in enumerate(axes):
                    out_dims[a], scale_of[a] = sz[j], ratios[j]
        else:
            st = bb.emit(R.astype(R.reshape(sizes, [-1]), "int64"))
            if vector_len(st) != n:
                st = bb.emit(R.take(st, relax.const(np.array(axes, "int64"), "int64"), axis=0))
            xs = bb.emit(R.take(shape_tensor(bb, x), relax.const(np.array(axes, "int64"), "int64"), axis=0))
            ratio = bb.emit(R.divide(R.astype(st, F64), R.astype(xs, F64)))
            if spec.policy != "stretch":
                agg = R.min if spec.policy == "not_larger" else R.max
                s = bb.emit(agg(ratio, axis=[0], keepdims=True))
                outs = bb.emit(R.astype(R.floor(R.add(R.multiply(s, R.astype(xs, F64)), relax.const(0.5, F64))),
                                        "int64"))
                ratio = bb.emit(R.broadcast_to(s, [n]))
            else:
                outs = st
            vars_ = bind_dims(bb, outs, "resize")
            for j, a in enumerate(axes):
                out_dims[a] = vars_[j]
                scale_of[a] = bb.emit(R.strided_slice(ratio, [0], [j], [j + 1]))
    else:
        if sc is not None and dims is not None and all(isinstance(dims[a], int) for a in axes):
            sv = [float(v) for v in sc.reshape(-1).astype(np.float32)]
            sv = sv if len(sv) == n else [sv[a] for a in axes]
            for j, a in enumerate(axes):
                span = 1.0
                if roi_pairs[a] is not None and not isinstance(roi_pairs[a], relax.Expr) and \
                        spec.coord == "tf_crop_and_resize":
                    span = roi_pairs[a][1] - roi_pairs[a][0]
                out_dims[a] = int(np.float64(dims[a]) * span * np.float64(sv[j]))
                scale_of[a] = sv[j]
        else:
            sv = _as_f64_vector(bb, scales)
            if vector_len(sv) != n:
                sv = bb.emit(R.take(sv, relax.const(np.array(axes, "int64"), "int64"), axis=0))
            xs = bb.emit(R.astype(R.take(shape_tensor(bb, x), relax.const(np.array(axes, "int64"), "int64"),
                                         axis=0), F64))
            outs = bb.emit(R.astype(R.floor(R.multiply(xs, sv)), "int64"))
            vars_ = bind_dims(bb, outs, "resize")
            for j, a in enumerate(axes):
                out_dims[a] = vars_[j]
                scale_of[a] = bb.emit(R.strided_slice(sv, [0], [j], [j + 1]))
    out = x
    for a in axes:
        s = scale_of[a]
        unchanged = (isinstance(s, float) and s == 1.0 and dims is not None and out_dims[a] == dims[a]
                     and roi_pairs[a] is None)
        if unchanged:
            continue
        out = _resize_axis(bb, out, a, out_dims[a], s, roi_pairs[a] if roi_pairs[a] is not None else None, spec,
                           None)
    return out


def vector_len(e) -> int:
    return int(shape_of(e)[0])


@register_converter("Resize")
class Resize(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        return resize(bb, inputs[0], None, inputs[1], None, None, _Spec(attr, 10))

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x = inputs[0]
        roi = inputs[1] if len(inputs) > 1 else None
        scales = inputs[2] if len(inputs) > 2 else None
        sizes = inputs[3] if len(inputs) > 3 else None
        if scales is not None and static(scales) is not None and static(scales).size == 0:
            scales = None
        axes = attr.get("axes")
        return resize(bb, x, roi, scales, sizes, list(axes) if axes is not None else None, _Spec(attr, 11))


@register_converter("Upsample")
class Upsample(Converter):
    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        scales = relax.const(np.array(attr["scales"], "float32"), "float32")
        return resize(bb, inputs[0], None, scales, None, None, _Spec(attr, 9))

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        return resize(bb, inputs[0], None, inputs[1], None, None, _Spec(attr, 9))
