"""Data movement by index: ReverseSequence (each batch entry reversed over its own length) and TensorScatter
(a KV-cache update: write ``update`` into ``past`` at per-batch positions, linear or circular)."""

from __future__ import annotations

from tvm import te, tirx

from ..converters import Converter, register_converter
from .common import emit_te, ndim, normalize_axis, te_int


@register_converter("ReverseSequence")
class ReverseSequence(Converter):
    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, lens = inputs
        b_ax = int(attr.get("batch_axis", 1))
        t_ax = int(attr.get("time_axis", 0))

        def kernel(t, ln):
            def f(*i):
                n = te_int(ln, i[b_ax])
                src = list(i)
                src[t_ax] = tirx.Select(i[t_ax] < n, n - 1 - i[t_ax], i[t_ax])
                return t(*src)

            return te.compute(t.shape, f, name="reverse_sequence")

        return emit_te(bb, kernel, x, lens, name="reverse_sequence")


@register_converter("TensorScatter")
class TensorScatter(Converter):
    @classmethod
    def _impl_v24(cls, bb, inputs, attr, params):
        past, update = inputs[0], inputs[1]
        idx = inputs[2] if len(inputs) > 2 else None
        r = ndim(past)
        axis = normalize_axis(attr.get("axis", -2), r)
        mode = attr.get("mode", b"linear")
        circular = (mode.decode() if isinstance(mode, bytes) else mode) == "circular"

        def kernel(p, u, *rest):
            w = rest[0] if rest else None

            def f(*i):
                start = te_int(w, i[0]) if w is not None else tirx.const(0, "int64")
                pos = tirx.Cast("int64", i[axis])
                max_len = tirx.Cast("int64", p.shape[axis])
                rel = tirx.floormod(pos - start, max_len) if circular else pos - start
                inside = tirx.all(rel >= 0, rel < tirx.Cast("int64", u.shape[axis]))
                src = list(i)
                src[axis] = tirx.min(tirx.max(rel, tirx.const(0, "int64")), tirx.Cast("int64", u.shape[axis]) - 1)
                return tirx.Select(inside, u(*src), p(*i))

            return te.compute(p.shape, f, name="tensor_scatter")

        args = [past, update] + ([idx] if idx is not None else [])
        return emit_te(bb, kernel, *args, name="tensor_scatter")
