"""LayerNormalization with all three outputs (Y, Mean, InvStdDev), and LpNormalization.

TVM's LayerNormalization returns placeholders for Mean/InvStdDev; here they are computed when a node asks for
them (in ``stash_type``, float32, as ONNX's function body does). A plain ``Y``-only node with a full-size scale
stays one ``layer_norm`` op, which fuses and schedules as a unit.
"""

from __future__ import annotations

from tvm import relax
from tvm.relax import op as R

from ..converters import Converter, register_converter
from .common import dtype, ndim, normalize_axis, shape_of


@register_converter("LayerNormalization")
class LayerNormalization(Converter):
    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        bias = inputs[2] if len(inputs) > 2 else None
        r = ndim(x)
        axis = normalize_axis(attr.get("axis", -1), r)
        eps = float(attr.get("epsilon", 1e-5))
        axes = list(range(axis, r))
        outputs = attr["tvm_custom"]["num_outputs"]
        dt = dtype(x)
        stash = "float32" if attr.get("stash_type", 1) == 1 and dt in ("float16", "bfloat16") else dt
        norm_shape = shape_of(x)[axis:] if shape_of(x) is not None else None
        full_scale = norm_shape is not None and shape_of(scale) == norm_shape and (
            bias is None or shape_of(bias) == norm_shape)
        if outputs == 1 and full_scale and stash == dt:
            b = bias if bias is not None else R.zeros_like(scale)
            return R.nn.layer_norm(x, scale, b, axes, eps)
        xs = bb.emit(R.astype(x, stash)) if stash != dt else x
        mean = bb.emit(R.mean(xs, axes, keepdims=True))
        d = bb.emit(R.subtract(xs, mean))
        var = bb.emit(R.mean(R.multiply(d, d), axes, keepdims=True))
        inv = bb.emit(R.divide(relax.const(1.0, stash), R.sqrt(R.add(var, relax.const(eps, stash)))))
        y = R.multiply(d, inv)
        if stash != dt:
            y = R.astype(y, dt)
        y = R.multiply(y, scale)
        if bias is not None:
            y = R.add(y, bias)
        return [bb.emit(y), mean, inv]


@register_converter("LpNormalization")
class LpNormalization(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        axis = normalize_axis(attr.get("axis", -1), ndim(x))
        p = int(attr.get("p", 2))
        if p == 1:
            norm = R.sum(R.abs(x), [axis], keepdims=True)
        elif p == 2:
            norm = R.sqrt(R.sum(R.multiply(x, x), [axis], keepdims=True))
        else:
            raise ValueError(f"LpNormalization supports p=1 and p=2, not {p}")
        norm = bb.emit(norm)
        zero = relax.const(0, dtype(x))
        safe = bb.emit(R.where(R.equal(norm, zero), relax.const(1, dtype(x)), norm))
        return R.where(R.equal(norm, zero), R.zeros_like(x), R.divide(x, safe))


@register_converter("RMSNormalization")
class RMSNormalization(Converter):
    """x / sqrt(mean(x^2) + eps) * scale over the dims from ``axis`` on (TVM's fails when that is every dim)."""

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        r = ndim(x)
        axis = normalize_axis(attr.get("axis", -1), r)
        eps = float(attr.get("epsilon", 1e-5))
        axes = list(range(axis, r))
        dt = dtype(x)
        stash = "float32" if attr.get("stash_type", 1) == 1 else dt
        dims = shape_of(x)
        if axis > 0 and stash == dt and dims is not None and shape_of(scale) == dims[axis:]:
            return R.nn.rms_norm(x, scale, axes, eps)
        xs = bb.emit(R.astype(x, stash)) if stash != dt else x
        ms = bb.emit(R.mean(R.multiply(xs, xs), axes, keepdims=True))
        y = R.divide(xs, R.sqrt(R.add(ms, relax.const(eps, stash))))
        if stash != dt:
            y = R.astype(y, dt)
        return R.multiply(y, scale)
