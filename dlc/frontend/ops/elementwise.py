"""Elementwise and small ops where TVM's converter is missing a case: mixed-type Pow, out-of-range BitShift,
IsInf's detect flags, numerically stable Mish, Elu/Celu in any float type, SpaceToDepth's CRD mode, BitCast,
OneHot with a run-time depth, BatchNormalization in training mode, and MatMul/Gemm in float16/bfloat16
accumulating in float32 (as onnx's reference and onnxruntime do).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.relax import op as R
from tvm.relax.frontend.onnx.onnx_frontend import Clip as _TvmClip
from tvm.relax.frontend.onnx.onnx_frontend import Gemm as _TvmGemm

from ..converters import Converter, register_converter
from ..values import np_dtype_name
from .common import dtype, emit_te, ndim, normalize_axis, prim, scalar_dim, shape_of

_LOW_FLOATS = ("float16", "bfloat16")


def _c(v, dt):
    return relax.const(v, dt)


@register_converter("Pow")
class Pow(Converter):
    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        x, y = inputs
        dt = dtype(x)
        if dt.startswith(("int", "uint")):  # numpy: an integer result, exact for integer exponents
            p = bb.emit(R.power(R.astype(x, "float64"), R.astype(y, "float64")))
            if dtype(y).startswith(("int", "uint")):
                p = bb.emit(R.round(p))
            return R.astype(p, dt)
        if dtype(y) != dt:
            y = bb.emit(R.astype(y, dt))
        return R.power(x, y)


@register_converter("BitShift")
class BitShift(Converter):
    """Shifts by a negative amount or by the bit width or more give 0 (-1 for negative signed right shifts)."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x, s = inputs
        dt = dtype(x)
        bits = np.iinfo(dt).bits
        direction = attr.get("direction", b"LEFT")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if dtype(s) != dt:
            s = bb.emit(R.astype(s, dt))
        oob = bb.emit(R.logical_or(R.less(s, _c(0, dt)), R.greater_equal(s, _c(bits, dt))))
        safe = bb.emit(R.where(oob, R.zeros_like(s), s))
        if direction == "RIGHT":
            shifted = R.right_shift(x, safe)
            fill = R.where(R.less(x, _c(0, dt)), R.full_like(x, _c(-1, dt)), R.zeros_like(x)) if dt.startswith(
                "int") else R.zeros_like(x)
        else:
            shifted = R.left_shift(x, safe)
            fill = R.zeros_like(x)
        return R.where(oob, fill, shifted)


@register_converter("IsInf")
class IsInf(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x = inputs[0]
        neg, pos = bool(attr.get("detect_negative", 1)), bool(attr.get("detect_positive", 1))
        inf = R.isinf(x)
        if neg and pos:
            return inf
        if not neg and not pos:
            return R.zeros_like(inf)
        zero = _c(0, dtype(x))
        return R.logical_and(inf, R.greater(x, zero) if pos else R.less(x, zero))


@register_converter("Mish")
class Mish(Converter):
    """x * tanh(softplus(x)) with softplus = max(x, 0) + log1p(exp(-|x|)): no overflow, no cancellation."""

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        def mish(t):
            def f(*i):
                v = t(*i)
                sp = tirx.max(v, tirx.const(0, t.dtype)) + tirx.log1p(tirx.exp(-tirx.abs(v)))
                return v * tirx.tanh(sp)

            return te.compute(t.shape, f, name="mish")

        return emit_te(bb, mish, inputs[0], name="mish")


@register_converter("Elu")
class Elu(Converter):
    @classmethod
    def _impl_v6(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = dtype(x)
        alpha = float(attr.get("alpha", 1.0))
        return R.where(R.greater(x, _c(0, dt)), x, R.multiply(_c(alpha, dt), R.subtract(R.exp(x), _c(1, dt))))


@register_converter("Celu")
class Celu(Converter):
    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = dtype(x)
        a = float(attr.get("alpha", 1.0))
        neg = R.multiply(_c(a, dt), R.subtract(R.exp(R.divide(x, _c(a, dt))), _c(1, dt)))
        return R.add(R.maximum(x, _c(0, dt)), R.minimum(neg, _c(0, dt)))


@register_converter("SpaceToDepth")
class SpaceToDepth(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        b = int(attr["blocksize"])
        mode = attr.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        n, c, h, w = shape_of(x)
        t = bb.emit(R.reshape(x, [n, c, h // b, b, w // b, b]))
        perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]
        return R.reshape(R.permute_dims(t, perm), [n, c * b * b, h // b, w // b])


@register_converter("BitCast")
class BitCast(Converter):
    @classmethod
    def _impl_v26(cls, bb, inputs, attr, params):
        x = inputs[0]
        to = np_dtype_name(attr["to"])
        src = dtype(x)
        if np.dtype(to).itemsize != np.dtype(src).itemsize:
            raise ValueError(f"BitCast from {src} to {to}: sizes differ")
        if src == "bool" or to == "bool":  # TVM's reinterpret does not take bool: go through uint8
            mid = bb.emit(R.astype(x, "uint8")) if src == "bool" else x
            if to == "bool":
                return R.not_equal(emit_te(bb, lambda t: te.compute(t.shape, lambda *i: tirx.reinterpret(
                    "uint8", t(*i)), name="bitcast"), mid, name="bitcast"), _c(0, "uint8"))
            return emit_te(bb, lambda t: te.compute(t.shape, lambda *i: tirx.reinterpret(to, t(*i)),
                                                     name="bitcast"), mid, name="bitcast")
        return emit_te(bb, lambda t: te.compute(t.shape, lambda *i: tirx.reinterpret(to, t(*i)), name="bitcast"),
                       x, name="bitcast")


@register_converter("OneHot")
class OneHot(Converter):
    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        indices, depth_t, values = inputs
        d = depth_t if dtype(depth_t).startswith(("int", "uint")) else bb.emit(R.astype(depth_t, "int64"))
        depth = scalar_dim(bb, d, "depth")
        r = ndim(indices)
        axis = normalize_axis(attr.get("axis", -1), r + 1)
        dims = shape_of(indices)
        out_shape = [prim(v) for v in dims[:axis]] + [prim(depth)] + [prim(v) for v in dims[axis:]]

        def kernel(idx, vals):
            def f(*o):
                i = o[:axis] + o[axis + 1:]
                v = idx(*i)
                v = tirx.Cast("int64", v) if not str(v.ty).startswith("int64") else v
                v = tirx.Select(v < 0, v + prim(depth), v)
                return tirx.Select(v == o[axis], vals(1), vals(0))

            return te.compute(out_shape, f, name="one_hot")

        return emit_te(bb, kernel, indices, values, name="one_hot")


@register_converter("BatchNormalization")
class BatchNormalization(Converter):
    """Inference as TVM does it; training mode (opset 14+) normalizes with the batch statistics and returns the
    updated running mean/var: running = momentum * running + (1 - momentum) * batch."""

    @classmethod
    def _impl_v15(cls, bb, inputs, attr, params):
        from tvm.relax.frontend.onnx.onnx_frontend import BatchNormalization as Tvm

        if not attr.get("training_mode", 0):
            return Tvm._impl_v15(bb, inputs, attr, params)
        x, scale, bias, mean, var = inputs
        eps, mom = float(attr.get("epsilon", 1e-5)), float(attr.get("momentum", 0.9))
        r = ndim(x)
        dt = dtype(x)
        axes = [0] + list(range(2, r))
        shape = [1, -1] + [1] * (r - 2)
        bm = bb.emit(R.mean(x, axes))
        bv = bb.emit(R.mean(R.multiply(R.subtract(x, R.reshape(bm, shape)), R.subtract(x, R.reshape(bm, shape))),
                            axes))
        inv = R.divide(_c(1.0, dt), R.sqrt(R.add(bv, _c(eps, dt))))
        y = R.add(R.multiply(R.multiply(R.subtract(x, R.reshape(bm, shape)), R.reshape(bb.emit(inv), shape)),
                             R.reshape(scale, shape)), R.reshape(bias, shape))
        mdt = dtype(mean)
        run_mean = R.add(R.multiply(mean, _c(mom, mdt)), R.multiply(R.astype(bm, mdt), _c(1 - mom, mdt)))
        run_var = R.add(R.multiply(var, _c(mom, mdt)), R.multiply(R.astype(bv, mdt), _c(1 - mom, mdt)))
        return [bb.emit(y), bb.emit(run_mean), bb.emit(run_var)]


@register_converter("MatMul")
class MatMul(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        a, b = inputs
        if dtype(a) in _LOW_FLOATS:
            return R.astype(bb.emit(R.matmul(a, b, out_dtype="float32")), dtype(a))
        return R.matmul(a, b)


@register_converter("Gemm")
class Gemm(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        dt = dtype(inputs[0])
        if dt not in _LOW_FLOATS:
            return _TvmGemm._impl_v13(bb, inputs, attr, params)
        # The product accumulates in float32 from the 16-bit operands (one matmul: tensor cores take it);
        # alpha, beta and C are applied in float32, and the result rounds once.
        a, b, c = (list(inputs) + [None] * 3)[:3]
        if attr.get("transA", 0):
            a = bb.emit(R.permute_dims(a))
        if attr.get("transB", 0):
            b = bb.emit(R.permute_dims(b))
        y = bb.emit(R.matmul(a, b, out_dtype="float32"))
        if attr.get("alpha", 1.0) != 1.0:
            y = bb.emit(R.multiply(y, _c(attr["alpha"], "float32")))
        if c is not None:
            c = bb.emit(R.astype(c, "float32"))
            if attr.get("beta", 1.0) != 1.0:
                c = bb.emit(R.multiply(c, _c(attr["beta"], "float32")))
            y = bb.emit(R.add(y, c))
        return R.astype(y, dt)


@register_converter("Softplus")
class Softplus(Converter):
    """max(x, 0) + log1p(exp(-|x|)): log(1 + exp(x)) loses everything below float precision for x << 0."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        def softplus(t):
            return te.compute(t.shape, lambda *i: tirx.max(t(*i), tirx.const(0, t.dtype)) + tirx.log1p(
                tirx.exp(-tirx.abs(t(*i)))), name="softplus")

        return emit_te(bb, softplus, inputs[0], name="softplus")


@register_converter("Clip")
class Clip(Converter):
    """Clip with constant bounds (Relu6 and its kind) becomes Relax ``maximum``/``minimum`` with scalar
    constants, which TVM's layout pass carries through a blocked layout and fusion folds into the producer's
    epilogue. TVM's converter writes opaque TE kernels instead, and ``relax.clip`` has no layout rule in TVM
    0.27: around either, ConvertLayout goes back to NCHW and forth again. Run-time bounds and integer tensors
    keep TVM's lowering."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return cls._clip(bb, inputs[0], attr.get("min", -np.inf), attr.get("max", np.inf),
                         lambda: _TvmClip._impl_v1(bb, inputs, attr, params))

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        inputs = list(inputs) + [None] * (3 - len(inputs))
        bounds = [_constant_scalar(b, default) for b, default in ((inputs[1], -np.inf), (inputs[2], np.inf))]
        return cls._clip(bb, inputs[0], *bounds, lambda: _TvmClip._impl_v13(bb, inputs, attr, params))

    @classmethod
    def _clip(cls, bb, x, lo, hi, tvm_clip):
        dt = dtype(x)
        if lo is None or hi is None or dt not in ("float32", "float64", "float16"):
            return tvm_clip()
        lo, hi = (-np.inf if np.isnan(lo) else lo), (np.inf if np.isnan(hi) else hi)  # NaN: unbounded (ORT)
        lo = min(lo, hi)  # ONNX computes min(max(x, lo), hi): hi everywhere when lo > hi
        if lo > -np.inf:
            x = R.maximum(x, _c(lo, dt))
        return R.minimum(x, _c(hi, dt)) if hi < np.inf else x


def _constant_scalar(bound, default: float) -> float | None:
    """The bound as a float if absent or a constant scalar, else None (known only at run time)."""
    if bound is None:
        return default
    if isinstance(bound, tvm.ir.GenericConst) and bound.value.numpy().size == 1:
        return float(bound.value.numpy().reshape(()))
    return None
