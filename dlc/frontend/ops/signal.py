"""DFT (forward, inverse, one-sided and its inverse, dft_length padding/truncation), axis static or run-time.

One TE kernel: for each output frequency (or sample) a sum over the input along the axis of
``x * exp(-+2 pi i j k / L)``, accumulated in float64. A run-time axis selects the indexed dim per element (as
the run-time-axis CumSum does); the output shape must then not depend on it (no one-sided output, no
dft_length), which is what such models use.
"""

from __future__ import annotations

import math

from tvm import te, tirx

from ..converters import Converter, register_converter
from .common import emit_te, ndim, normalize_axis, prim, scalar_dim, shape_of, static_ints, te_int

F64 = "float64"


def _dft_kernel(x: te.Tensor, *rest, axis, length, out_len, inverse: bool, onesided: bool, has_axis_t: bool):
    axis_t = rest[0] if has_axis_t else None
    r = len(x.shape)
    dims = [prim(d) for d in x.shape]
    complex_in = int(x.shape[-1]) == 2
    if axis_t is not None:
        a = te_int(axis_t)
        a = tirx.Select(a < 0, a + r, a)
        n_in = dims[0]
        for i in range(1, r - 1):
            n_in = tirx.Select(a == i, dims[i], n_in)
        extent = dims[0]
        for d in dims[1:-1]:
            extent = tirx.max(extent, d)
    else:
        n_in = dims[axis]
        extent = dims[axis]
    L = prim(length)
    j = te.reduce_axis((0, extent), name="j")
    irfft = inverse and onesided
    out_dtype = str(x.dtype)
    out_shape = [prim(d) for d in x.shape[:-1]] + [1 if irfft else 2]
    if axis_t is None:
        out_shape[axis] = prim(out_len)

    def src(o, jj):
        idx = list(o[:-1])
        if axis_t is None:
            idx[axis] = jj
        else:
            idx = [tirx.Select(a == i, tirx.min(jj, dims[i] - 1), o[i]) for i in range(r - 1)]
        return idx

    def body(*o):
        k = o[axis] if axis_t is None else _select_axis(o, a, r)
        idx = src(o, j)
        re_ = tirx.Cast(F64, x(*idx, 0))
        im_ = tirx.Cast(F64, x(*idx, 1)) if complex_in else tirx.const(0.0, F64)
        limit = tirx.min(n_in, L) if not irfft else tirx.min(n_in, tirx.floordiv(L, 2) + 1)
        valid = j < limit
        if irfft:  # j is the frequency here, k the sample
            theta = tirx.const(2 * math.pi, F64) * tirx.Cast(F64, tirx.floormod(j * k, L)) / tirx.Cast(F64, L)
            w = tirx.Select(tirx.any(j == 0, tirx.all(tirx.floormod(L, 2) == 0, j == tirx.floordiv(L, 2))),
                            tirx.const(1.0, F64), tirx.const(2.0, F64))
            v = w * (re_ * tirx.cos(theta) - im_ * tirx.sin(theta))
        else:
            theta = tirx.const(2 * math.pi, F64) * tirx.Cast(F64, tirx.floormod(j * k, L)) / tirx.Cast(F64, L)
            c, s = tirx.cos(theta), tirx.sin(theta)
            if inverse:
                v = tirx.Select(o[-1] == 0, re_ * c - im_ * s, re_ * s + im_ * c)
            else:
                v = tirx.Select(o[-1] == 0, re_ * c + im_ * s, im_ * c - re_ * s)
        return te.sum(tirx.Select(valid, v, tirx.const(0.0, F64)), axis=j)

    acc = te.compute(out_shape, body, name="dft_acc")
    scale = (lambda v: v / tirx.Cast(F64, L)) if inverse else (lambda v: v)
    return te.compute(out_shape, lambda *o: tirx.Cast(out_dtype, scale(acc(*o))), name="dft")


def _select_axis(o, a, r):
    k = o[0]
    for i in range(1, r - 1):
        k = tirx.Select(a == i, o[i], k)
    return k


@register_converter("DFT")
class DFT(Converter):
    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        return cls._dft(bb, inputs[0], inputs[1] if len(inputs) > 1 else None, attr.get("axis", 1), attr)

    @classmethod
    def _impl_v20(cls, bb, inputs, attr, params):
        axis = inputs[2] if len(inputs) > 2 and inputs[2] is not None else -2
        return cls._dft(bb, inputs[0], inputs[1] if len(inputs) > 1 else None, axis, attr)

    @classmethod
    def _dft(cls, bb, x, dft_length, axis, attr):
        inverse, onesided = bool(attr.get("inverse", 0)), bool(attr.get("onesided", 0))
        r = ndim(x)
        dims = shape_of(x)
        axis_t = None
        if not isinstance(axis, int):
            k = static_ints(axis)
            if k is None:
                axis_t = axis
            else:
                axis = k[0]
        if axis_t is None:
            axis = normalize_axis(axis, r)
        if dft_length is not None:
            length = scalar_dim(bb, dft_length, "dft")
        elif axis_t is not None:
            if onesided:
                raise ValueError("DFT with a run-time axis supports two-sided transforms only")
            length = None
        else:
            length = 2 * (dims[axis] - 1) if (inverse and onesided) else dims[axis]
        if axis_t is not None and dft_length is not None:
            raise ValueError("DFT with a run-time axis cannot take dft_length")
        if axis_t is not None:
            # L is the selected dim: computed inside the kernel from the axis value
            def kernel(t, at):
                dl = [prim(d) for d in t.shape]
                a = te_int(at)
                a = tirx.Select(a < 0, a + r, a)
                n = dl[0]
                for i in range(1, r - 1):
                    n = tirx.Select(a == i, dl[i], n)
                return _dft_kernel(t, at, axis=None, length=n, out_len=None, inverse=inverse, onesided=False,
                                   has_axis_t=True)

            return emit_te(bb, kernel, x, axis_t, name="dft_dynamic_axis")
        out_len = length // 2 + 1 if (onesided and not inverse and isinstance(length, int)) else length
        if onesided and not inverse and not isinstance(length, int):
            out_len = tirx.floordiv(prim(length), 2) + 1
        return emit_te(bb, lambda t: _dft_kernel(t, axis=axis, length=length, out_len=out_len, inverse=inverse,
                                                 onesided=onesided, has_axis_t=False), x, name="dft")
