"""Optimizer steps from ``ai.onnx.preview.training``: Adagrad, Momentum (standard and Nesterov), Adam.

Each updates one or more (X, G, state...) groups with a learning rate R and an iteration count T, elementwise,
as the ONNX spec writes them out; T > 0 switches on Momentum's gradient coefficient and Adam's bias correction.
"""

from __future__ import annotations

from tvm import relax
from tvm.relax import op as R

from ..converters import Converter, register_converter
from .common import dtype

DOMAIN = "ai.onnx.preview.training"


def _c(v, dt):
    return relax.const(float(v), dt)


def _scalars(bb, r, t, dt):
    r = bb.emit(R.reshape(R.astype(r, dt), []))
    tf = bb.emit(R.reshape(R.astype(t, dt), []))
    return r, tf


@register_converter("Adagrad", domain=DOMAIN)
class Adagrad(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        n = (len(inputs) - 2) // 3
        dt = dtype(inputs[2])
        r, t = _scalars(bb, inputs[0], inputs[1], dt)
        decay, eps, norm = (float(attr.get(k, d)) for k, d in (("decay_factor", 0.0), ("epsilon", 1e-6),
                                                               ("norm_coefficient", 0.0)))
        lr = bb.emit(R.divide(r, R.add(_c(1, dt), R.multiply(t, _c(decay, dt)))))
        xs, hs = [], []
        for i in range(n):
            x, g, h = inputs[2 + i], inputs[2 + n + i], inputs[2 + 2 * n + i]
            gr = bb.emit(R.add(R.multiply(_c(norm, dt), x), g))
            h_new = bb.emit(R.add(h, R.multiply(gr, gr)))
            xs.append(bb.emit(R.subtract(x, R.divide(R.multiply(lr, gr), R.add(R.sqrt(h_new), _c(eps, dt))))))
            hs.append(h_new)
        return xs + hs


@register_converter("Momentum", domain=DOMAIN)
class Momentum(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        n = (len(inputs) - 2) // 3
        dt = dtype(inputs[2])
        r, t = _scalars(bb, inputs[0], inputs[1], dt)
        alpha, beta, norm = float(attr["alpha"]), float(attr["beta"]), float(attr.get("norm_coefficient", 0.0))
        mode = attr.get("mode", b"standard")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        beta_t = bb.emit(R.where(R.greater(t, _c(0, dt)), _c(beta, dt), _c(1, dt)))
        xs, vs = [], []
        for i in range(n):
            x, g, v = inputs[2 + i], inputs[2 + n + i], inputs[2 + 2 * n + i]
            gr = bb.emit(R.add(R.multiply(_c(norm, dt), x), g))
            v_new = bb.emit(R.add(R.multiply(_c(alpha, dt), v), R.multiply(beta_t, gr)))
            step = v_new if mode == "standard" else R.add(gr, R.multiply(_c(alpha, dt), v_new))
            xs.append(bb.emit(R.subtract(x, R.multiply(r, step))))
            vs.append(v_new)
        return xs + vs


@register_converter("Adam", domain=DOMAIN)
class Adam(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        n = (len(inputs) - 2) // 4
        dt = dtype(inputs[2])
        r, t = _scalars(bb, inputs[0], inputs[1], dt)
        alpha, beta = float(attr.get("alpha", 0.9)), float(attr.get("beta", 0.999))
        eps, norm = float(attr.get("epsilon", 1e-6)), float(attr.get("norm_coefficient", 0.0))
        post = float(attr.get("norm_coefficient_post", 0.0))
        corrected = R.divide(R.multiply(r, R.sqrt(R.subtract(_c(1, dt), R.power(_c(beta, dt), t)))),
                             R.subtract(_c(1, dt), R.power(_c(alpha, dt), t)))
        lr = bb.emit(R.where(R.greater(t, _c(0, dt)), corrected, r))
        xs, vs, hs = [], [], []
        for i in range(n):
            x, g, v, h = (inputs[2 + k * n + i] for k in range(4))
            gr = bb.emit(R.add(R.multiply(_c(norm, dt), x), g))
            v_new = bb.emit(R.add(R.multiply(_c(alpha, dt), v), R.multiply(_c(1 - alpha, dt), gr)))
            h_new = bb.emit(R.add(R.multiply(_c(beta, dt), h), R.multiply(_c(1 - beta, dt), R.multiply(gr, gr))))
            x_new = R.subtract(x, R.multiply(lr, R.divide(v_new, R.add(R.sqrt(h_new), _c(eps, dt)))))
            xs.append(bb.emit(R.multiply(_c(1 - post, dt), x_new)))
            vs.append(v_new)
            hs.append(h_new)
        return xs + vs + hs
