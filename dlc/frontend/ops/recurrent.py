"""Recurrent layers: RNN, GRU, LSTM (forward, reverse, bidirectional; layout 0/1; sequence_lens; peepholes;
clip; custom activations with alpha/beta).

The input projection of every time step is one matmul (``X @ W^T + Wb`` over the whole sequence); the
recurrence is unrolled over the (static) sequence length, one small matmul with ``R`` per step, which fuses
with the gate arithmetic. ``sequence_lens`` masks steps past a batch entry's length: its state stops
changing and its outputs are zero, which also gives the right reverse-direction semantics (a reversed
sequence starts at its own last valid step).
"""

from __future__ import annotations

from collections.abc import Callable

from tvm import relax
from tvm.relax import op as R

from ..converters import Converter, register_converter
from .common import dtype, shape_of

_NEEDS_ALPHA = {"LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "ScaledTanh": 1.0, "HardSigmoid": 0.2, "Elu": 1.0,
                "Affine": 1.0}
_NEEDS_BETA = {"ScaledTanh": 1.0, "HardSigmoid": 0.5, "Affine": 0.0}


def _activation(name: str, alpha: float | None, beta: float | None, dt: str) -> Callable[[relax.Expr], relax.Expr]:
    def c(v):
        return relax.const(v, dt)

    a = alpha if alpha is not None else _NEEDS_ALPHA.get(name)
    b = beta if beta is not None else _NEEDS_BETA.get(name)
    table = {
        "Sigmoid": lambda x: R.sigmoid(x),
        "Tanh": lambda x: R.tanh(x),
        "Relu": lambda x: R.nn.relu(x),
        "Affine": lambda x: R.add(R.multiply(c(a), x), c(b)),
        "LeakyRelu": lambda x: R.where(R.greater_equal(x, c(0)), x, R.multiply(c(a), x)),
        "ThresholdedRelu": lambda x: R.where(R.greater(x, c(a)), x, R.zeros_like(x)),
        "ScaledTanh": lambda x: R.multiply(c(a), R.tanh(R.multiply(c(b), x))),
        "HardSigmoid": lambda x: R.clip(R.add(R.multiply(c(a), x), c(b)), 0.0, 1.0),
        "Elu": lambda x: R.where(R.greater_equal(x, c(0)), x, R.multiply(c(a), R.subtract(R.exp(x), c(1)))),
        "Softsign": lambda x: R.divide(x, R.add(c(1), R.abs(x))),
        "Softplus": lambda x: R.log(R.add(c(1), R.exp(x))),
    }
    if name not in table:
        raise ValueError(f"unsupported recurrent activation {name!r}")
    return table[name]


def _activations(attr, defaults: list[str], num_dir: int, dt: str) -> list[list[Callable]]:
    """Per direction, the activation functions; alpha/beta consumed in order by those that take them."""
    names = [n.decode() if isinstance(n, bytes) else n for n in attr.get("activations", [])] or defaults * num_dir
    if len(names) == len(defaults):
        names = names * num_dir
    alphas = list(attr.get("activation_alpha", []))
    betas = list(attr.get("activation_beta", []))
    fns = []
    for n in names:
        n = {k.lower(): k for k in [*_NEEDS_ALPHA, "Sigmoid", "Tanh", "Relu", "Softsign", "Softplus"]}.get(n.lower(), n)
        a = alphas.pop(0) if n in _NEEDS_ALPHA and alphas else None
        b = betas.pop(0) if n in _NEEDS_BETA and betas else None
        fns.append(_activation(n, a, b, dt))
    k = len(defaults)
    return [fns[d * k:(d + 1) * k] for d in range(num_dir)]


class _Recurrent(Converter):
    kind = ""
    gates = 1
    defaults: list[str] = []

    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        x, w, r_ = inputs[0], inputs[1], inputs[2]
        b = inputs[3] if len(inputs) > 3 else None
        seq_lens = inputs[4] if len(inputs) > 4 else None
        h0 = inputs[5] if len(inputs) > 5 else None
        c0 = inputs[6] if len(inputs) > 6 else None
        p = inputs[7] if len(inputs) > 7 else None
        dt = dtype(x)
        layout = int(attr.get("layout", 0))
        direction = attr.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        num_dir = 2 if direction == "bidirectional" else 1
        if layout:
            x = bb.emit(R.permute_dims(x, [1, 0, 2]))
            h0 = bb.emit(R.permute_dims(h0, [1, 0, 2])) if h0 is not None else None
            c0 = bb.emit(R.permute_dims(c0, [1, 0, 2])) if c0 is not None else None
        dims = shape_of(x)
        if dims is None or not isinstance(dims[0], int):
            raise ValueError(f"{cls.kind} needs a static sequence length (got {dims and dims[0]})")
        seq, batch = dims[0], dims[1]
        hidden = int(attr.get("hidden_size") or shape_of(r_)[-1])
        clip = attr.get("clip")
        acts = _activations(attr, cls.defaults, num_dir, dt)
        zeros = bb.emit(R.zeros(relax.ShapeExpr([batch, hidden]), dt))
        mask = None
        if seq_lens is not None:
            lens = bb.emit(R.reshape(bb.emit(R.astype(seq_lens, "int64")), [-1, 1]))  # (batch, 1)
            mask = lens
        ys, hs, cs = [], [], []
        for d in range(num_dir):
            wd = bb.emit(R.squeeze(R.strided_slice(w, [0], [d], [d + 1]), [0]))  # (G*H, I)
            rd = bb.emit(R.squeeze(R.strided_slice(r_, [0], [d], [d + 1]), [0]))  # (G*H, H)
            xw = bb.emit(R.matmul(x, R.permute_dims(wd, [1, 0])))  # (seq, batch, G*H)
            rb = None
            if b is not None:
                bd = bb.emit(R.squeeze(R.strided_slice(b, [0], [d], [d + 1]), [0]))
                g = cls.gates * hidden
                xw = bb.emit(R.add(xw, R.strided_slice(bd, [0], [0], [g])))
                rb = bb.emit(R.strided_slice(bd, [0], [g], [2 * g]))
            rt = bb.emit(R.permute_dims(rd, [1, 0]))  # (H, G*H)
            h = bb.emit(R.squeeze(R.strided_slice(h0, [0], [d], [d + 1]), [0])) if h0 is not None else zeros
            c = None
            if cls.kind == "LSTM":
                c = bb.emit(R.squeeze(R.strided_slice(c0, [0], [d], [d + 1]), [0])) if c0 is not None else zeros
            pd = bb.emit(R.squeeze(R.strided_slice(p, [0], [d], [d + 1]), [0])) if p is not None else None
            reverse = direction == "reverse" or d == 1
            outs = [None] * seq
            for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
                xt = bb.emit(R.squeeze(R.strided_slice(xw, [0], [t], [t + 1]), [0]))
                h_new, c_new = cls._cell(bb, xt, h, c, rt, rb, pd, acts[d], hidden, clip, attr, dt)
                if mask is not None:
                    valid = bb.emit(R.greater(mask, relax.const(t, "int64")))  # (batch, 1)
                    outs[t] = bb.emit(R.where(valid, h_new, R.zeros_like(h_new)))
                    h = bb.emit(R.where(valid, h_new, h))
                    if c is not None:
                        c = bb.emit(R.where(valid, c_new, c))
                else:
                    outs[t] = h = h_new
                    c = c_new
            ys.append(bb.emit(R.stack(outs, axis=0)))  # (seq, batch, H)
            hs.append(h)
            cs.append(c)
        y = bb.emit(R.stack(ys, axis=1))  # (seq, num_dir, batch, H)
        y_h = bb.emit(R.stack(hs, axis=0))  # (num_dir, batch, H)
        y_c = bb.emit(R.stack(cs, axis=0)) if cls.kind == "LSTM" else None
        if layout:
            y = bb.emit(R.permute_dims(y, [2, 0, 1, 3]))
            y_h = bb.emit(R.permute_dims(y_h, [1, 0, 2]))
            y_c = bb.emit(R.permute_dims(y_c, [1, 0, 2])) if y_c is not None else None
        return [y, y_h] + ([y_c] if y_c is not None else [])

    @staticmethod
    def _clip(v, clip, dt):
        return v if clip is None else R.clip(v, -float(clip), float(clip))

    @staticmethod
    def _gate(v, i, hidden):
        return R.strided_slice(v, [1], [i * hidden], [(i + 1) * hidden])


@register_converter("RNN")
class RNN(_Recurrent):
    kind, gates, defaults = "RNN", 1, ["Tanh"]

    @classmethod
    def _cell(cls, bb, xt, h, c, rt, rb, p, acts, hidden, clip, attr, dt):
        pre = R.add(xt, R.matmul(h, rt))
        if rb is not None:
            pre = R.add(pre, rb)
        return bb.emit(acts[0](cls._clip(pre, clip, dt))), None


@register_converter("GRU")
class GRU(_Recurrent):
    kind, gates, defaults = "GRU", 3, ["Sigmoid", "Tanh"]

    @classmethod
    def _cell(cls, bb, xt, h, c, rt, rb, p, acts, hidden, clip, attr, dt):
        f, g = acts
        hr = bb.emit(R.matmul(h, rt))  # (batch, 3H): z, r, h parts of H @ R^T
        if rb is not None:
            hr_b = bb.emit(R.add(hr, rb))
        else:
            hr_b = hr
        z = bb.emit(f(cls._clip(R.add(cls._gate(xt, 0, hidden), cls._gate(hr_b, 0, hidden)), clip, dt)))
        r = bb.emit(f(cls._clip(R.add(cls._gate(xt, 1, hidden), cls._gate(hr_b, 1, hidden)), clip, dt)))
        if attr.get("linear_before_reset", 0):
            cand = R.add(cls._gate(xt, 2, hidden), R.multiply(r, cls._gate(hr_b, 2, hidden)))
        else:
            rh = R.matmul(R.multiply(r, h), R.strided_slice(rt, [1], [2 * hidden], [3 * hidden]))
            cand = R.add(cls._gate(xt, 2, hidden), rh)
            if rb is not None:
                cand = R.add(cand, R.strided_slice(rb, [0], [2 * hidden], [3 * hidden]))
        hh = bb.emit(g(cls._clip(cand, clip, dt)))
        one = relax.const(1.0, dt)
        return bb.emit(R.add(R.multiply(R.subtract(one, z), hh), R.multiply(z, h))), None


@register_converter("LSTM")
class LSTM(_Recurrent):
    kind, gates, defaults = "LSTM", 4, ["Sigmoid", "Tanh", "Tanh"]

    @classmethod
    def _cell(cls, bb, xt, h, c, rt, rb, p, acts, hidden, clip, attr, dt):
        f, g, hfn = acts
        pre = R.add(xt, R.matmul(h, rt))
        if rb is not None:
            pre = R.add(pre, rb)
        pre = bb.emit(pre)  # (batch, 4H), gate order i, o, f, c

        def gate(i):
            return cls._gate(pre, i, hidden)

        def peep(i, state):
            return R.multiply(R.strided_slice(p, [0], [i * hidden], [(i + 1) * hidden]), state)

        gi, go, gf, gc = gate(0), gate(1), gate(2), gate(3)
        if p is not None:  # P is (i, o, f)
            gi = R.add(gi, peep(0, c))
            gf = R.add(gf, peep(2, c))
        i_t = bb.emit(f(cls._clip(gi, clip, dt)))
        if attr.get("input_forget", 0):
            f_t = bb.emit(R.subtract(relax.const(1.0, dt), i_t))
        else:
            f_t = bb.emit(f(cls._clip(gf, clip, dt)))
        c_hat = bb.emit(g(cls._clip(gc, clip, dt)))
        c_new = bb.emit(R.add(R.multiply(f_t, c), R.multiply(i_t, c_hat)))
        if p is not None:
            go = R.add(go, peep(1, c_new))
        o_t = bb.emit(f(cls._clip(go, clip, dt)))
        return bb.emit(R.multiply(o_t, hfn(c_new))), c_new
