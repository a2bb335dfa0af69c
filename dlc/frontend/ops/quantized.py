"""Quantization: QuantizeLinear/DequantizeLinear (per-tensor, per-axis, blocked; int8/16, int4/2, float8/4
outputs), QLinearConv, QLinearMatMul, ConvInteger.

Integer arithmetic is exact: inputs are widened to int32, zero points subtracted, convolutions and matmuls
accumulate in int32. Requantization multiplies the int32 accumulator by ``in_scale * w_scale / out_scale``
in float64 (as onnx's reference does), rounds half to even, adds the output zero point and saturates.
A QDQ-quantized model therefore runs as the graph it is: DequantizeLinear of constant weights folds at import
time, activations are quantized and dequantized exactly.
"""

from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx
from tvm.relax import op as R
from tvm.relax.frontend.onnx.onnx_frontend import Conv as _TvmConv

from ...signature import carrier_dtype
from ..converters import Converter, register_converter
from ..graph import Value
from ..values import np_dtype_name
from .cast import FLOAT_FORMATS, cast
from .common import dtype, emit_te, logical_dtype, ndim, normalize_axis, shape_of

INT_RANGES = {
    "uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
    "uint4": (0, 15), "int4": (-8, 7), "uint2": (0, 3), "int2": (-2, 1), "int32": (-(2**31), 2**31 - 1),
}


def broadcast_param(bb, p: relax.Expr, x: relax.Expr, axis: int, block_size: int) -> relax.Expr:
    """A scale/zero point made broadcastable to x: scalar, per-axis vector, or blocked (repeated per block)."""
    r = ndim(x)
    dims = shape_of(p)
    if ndim(p) == 0:
        return p
    if dims is not None and all(isinstance(d, int) for d in dims) and int(np.prod(dims)) == 1:
        return bb.emit(R.reshape(p, []))
    axis = normalize_axis(axis, r)
    if not block_size:
        shape = [1] * r
        shape[axis] = dims[0]
        return bb.emit(R.reshape(p, shape))
    rep = bb.emit(R.repeat(p, block_size, axis=axis))
    xd = shape_of(x)
    return bb.emit(R.strided_slice(rep, [axis], [0], [xd[axis]]))


def _round_clip_kernel(bb, v: relax.Expr, zp: relax.Expr | None, lo: int, hi: int, out_dtype: str):
    """rint(v) (+ zp) clipped to [lo, hi], cast to out_dtype; v float, zp broadcastable int."""
    args = [v] + ([zp] if zp is not None else [])
    shape = shape_of(bb.normalize(R.add(v, R.astype(zp, dtype(v))) if zp is not None else v))

    def kernel(t, *rest):
        def f(*i):
            val = tirx.Cast("float64", tirx.nearbyint(t(*_bidx(t, i))))
            if rest:
                val = val + tirx.Cast("float64", rest[0](*_bidx(rest[0], i)))
            val = tirx.min(tirx.max(val, tirx.const(float(lo), "float64")), tirx.const(float(hi), "float64"))
            return tirx.Cast(out_dtype, val)

        return te.compute(shape, f, name="requantize")

    return emit_te(bb, kernel, *args, name="quantize_round")


def _bidx(t: te.Tensor, idx):
    """Index a broadcastable tensor with the output's index (numpy broadcasting, right-aligned)."""
    r = len(t.shape)
    idx = idx[len(idx) - r:] if r else ()
    return [tirx.const(0, "int64") if (isinstance(d, tirx.IntImm) and int(d) == 1) else i
            for d, i in zip(t.shape, idx)]


def quantize(bb, x, scale, zp, out: str, axis: int, block_size: int, saturate: bool, precision: str | None):
    s = broadcast_param(bb, scale, x, axis, block_size)
    xf, sf = x, s
    if precision and precision != dtype(x):
        xf, sf = bb.emit(R.astype(x, precision)), bb.emit(R.astype(s, precision))
    q = bb.emit(R.divide(xf, sf))
    if out in INT_RANGES:
        lo, hi = INT_RANGES[out]
        z = broadcast_param(bb, bb.emit(R.astype(zp, "int32")), x, axis, block_size) if zp is not None else None
        return Value(_round_clip_kernel(bb, q, z, lo, hi, carrier_dtype(out)), None, out)
    if out in FLOAT_FORMATS and out != "float4_e2m1fn":
        return cast(bb, q, dtype(q), out, saturate)
    if out == "float4_e2m1fn":
        if zp is not None:
            q = bb.emit(R.add(q, broadcast_param(bb, bb.emit(R.astype(zp, dtype(q))), x, axis, block_size)))
        return cast(bb, q, dtype(q), out, True)
    raise ValueError(f"QuantizeLinear to {out} is not supported")


def dequantize(bb, x, scale, zp, axis: int, block_size: int, out: str | None):
    src = logical_dtype(x)
    dx = bb.emit(R.astype(x, "float32")) if dtype(x) != "float32" else x
    if zp is not None and src not in FLOAT_FORMATS and src not in ("float8_e8m0fnu",):
        z = broadcast_param(bb, bb.emit(R.astype(zp, "float32")), x, axis, block_size)
        dx = bb.emit(R.subtract(dx, z))
    s = scale if dtype(scale) == "float32" else bb.emit(R.astype(scale, "float32"))
    y = R.multiply(dx, broadcast_param(bb, s, x, axis, block_size))
    target = out or dtype(scale)
    y = bb.emit(y)
    return R.astype(y, target) if dtype(y) != target else y


@register_converter("QuantizeLinear")
class QuantizeLinear(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        zp = inputs[2] if len(inputs) > 2 else None
        out_attr = attr.get("output_dtype", 0)
        out = logical_dtype(zp) if zp is not None else (np_dtype_name(out_attr) if out_attr else "uint8")
        precision = attr.get("precision", 0)
        return quantize(bb, x, scale, zp, out, attr.get("axis", 1), attr.get("block_size", 0),
                        bool(attr.get("saturate", 1)), np_dtype_name(precision) if precision else None)


@register_converter("DequantizeLinear")
class DequantizeLinear(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        zp = inputs[2] if len(inputs) > 2 else None
        out_attr = attr.get("output_dtype", 0)
        return dequantize(bb, x, scale, zp, attr.get("axis", 1), attr.get("block_size", 0),
                          np_dtype_name(out_attr) if out_attr else None)


def _widen(bb, v: relax.Expr, zp: relax.Expr | None, per_channel_axis: int | None = None) -> relax.Expr:
    """int32(v) - int32(zp); a 1-D zero point of a weight applies per output channel (axis 0)."""
    w = bb.emit(R.astype(v, "int32"))
    if zp is None:
        return w
    z = bb.emit(R.astype(zp, "int32"))
    if per_channel_axis is not None and ndim(z) == 1 and shape_of(z) != [1]:
        shape = [1] * ndim(v)
        shape[per_channel_axis] = -1
        z = bb.emit(R.reshape(z, shape))
    return bb.emit(R.subtract(w, z))


def _conv_int32(bb, x32, w32, attr):
    conv_attr = {k: v for k, v in attr.items() if k != "tvm_custom"}
    conv_attr["tvm_custom"] = attr.get("tvm_custom", {})
    return bb.emit(_TvmConv._impl_v11(bb, [x32, w32, None], conv_attr, [{}, {}]))


def _requantize(bb, acc, multiplier, zp, out: str):
    """saturate(rint(acc * multiplier) + zp): acc int32, multiplier float64 broadcastable."""
    v = bb.emit(R.multiply(R.astype(acc, "float64"), multiplier))
    lo, hi = INT_RANGES[out]
    z = bb.emit(R.astype(zp, "int32")) if zp is not None else None
    return Value(_round_clip_kernel(bb, v, z, lo, hi, carrier_dtype(out)), None, out)


def _f64(bb, e):
    return bb.emit(R.astype(e, "float64"))


@register_converter("QLinearConv")
class QLinearConv(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, xs, xz, w, ws, wz, ys, yz = inputs[:8]
        b = inputs[8] if len(inputs) > 8 else None
        acc = _conv_int32(bb, _widen(bb, x, xz), _widen(bb, w, wz, per_channel_axis=0), attr)
        r = ndim(acc)
        if b is not None:
            acc = bb.emit(R.add(acc, R.reshape(bb.emit(R.astype(b, "int32")), [1, -1] + [1] * (r - 2))))
        wsv = _f64(bb, ws)
        if ndim(ws) == 1 and shape_of(ws) != [1]:
            wsv = bb.emit(R.reshape(wsv, [1, -1] + [1] * (r - 2)))
        mult = bb.emit(R.divide(R.multiply(_f64(bb, xs), wsv), _f64(bb, ys)))
        out = logical_dtype(yz) if yz is not None else logical_dtype(x)
        return _requantize(bb, acc, mult, yz, out)


@register_converter("QLinearMatMul")
class QLinearMatMul(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        a, as_, az, b, bs, bz, ys, yz = inputs[:8]
        src = logical_dtype(a)
        if src in FLOAT_FORMATS:  # float8 inputs (opset 21): dequantize, matmul in float, quantize
            da = dequantize(bb, a, as_, az, 1, 0, "float32")
            db = dequantize(bb, b, bs, bz, 1, 0, "float32")
            y = bb.emit(R.matmul(bb.emit(da), bb.emit(db)))
            out = logical_dtype(yz) if yz is not None else src
            return quantize(bb, y, ys, yz, out, 1, 0, True, None)
        acc = bb.emit(R.matmul(_widen(bb, a, az), _widen(bb, b, bz), out_dtype="int32"))
        mult = bb.emit(R.divide(R.multiply(_f64(bb, as_), _f64(bb, bs)), _f64(bb, ys)))
        out = logical_dtype(yz) if yz is not None else src
        return _requantize(bb, acc, mult, yz, out)


@register_converter("ConvInteger")
class ConvInteger(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, w = inputs[0], inputs[1]
        xz = inputs[2] if len(inputs) > 2 else None
        wz = inputs[3] if len(inputs) > 3 else None
        return _conv_int32(bb, _widen(bb, x, xz), _widen(bb, w, wz, per_channel_axis=0), attr)
