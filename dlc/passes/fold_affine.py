"""fold-affine: per-channel scale/shift after a conv2d or matmul -> folded into its weights and one bias.

    conv2d(x, W) (op c)*   ->  add(conv2d(x, W * s), t)       op in {add, subtract, multiply, divide}
    matmul(x, W) (op c)*   ->  add(matmul(x, W * s), t)

where ``W`` and every ``c`` are constants and each ``c`` varies at most along the output-channel axis (axis 1
of NCHW conv output, the last axis of a matmul): a BatchNormalization after ``decompose-inference`` (subtract
mean, divide by sqrt(var + eps), multiply gamma, add beta), ONNX Mul/Add by constants (DenseNet and
Inception-v2 scale BN outputs again), and the Conv/Gemm bias itself. ``s`` and ``t`` are accumulated in float64.
A chain stops at any value with another user, so no convolution is ever computed twice.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from . import register_pass

_AFFINE = {"relax.add", "relax.subtract", "relax.multiply", "relax.divide"}


def _const(expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, tvm.ir.GenericConst) else None


def _anchor_axis(call: relax.Call) -> int | None:
    """Output-channel axis of a foldable conv2d/matmul with a constant weight, else None."""
    if not isinstance(call, relax.Call) or not isinstance(call.op, tvm.ir.Op) or len(call.args) < 2 \
            or _const(call.args[1]) is None:
        return None
    if call.op.name == "relax.nn.conv2d":
        a = call.attrs
        ok = a.data_layout == a.out_layout == "NCHW" and a.kernel_layout == "OIHW"
        return 1 if ok else None
    if call.op.name == "relax.matmul" and call.args[1].ty.ndim == 2:
        return -1
    return None


def _per_channel(c: np.ndarray, out_ndim: int, axis: int, channels: int) -> np.ndarray | None:
    """``c`` as a (channels,) vector if it broadcasts against the output only along ``axis``."""
    if c.ndim > out_ndim:
        return None
    full = c.reshape((1,) * (out_ndim - c.ndim) + c.shape)
    axis = axis % out_ndim
    if any(d != 1 for i, d in enumerate(full.shape) if i != axis) or full.shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(np.float64)


def _apply(op: str, s: np.ndarray, t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) of ``op(anchor * s + t, c)``."""
    if op == "relax.add":
        return s, t + c
    if op == "relax.subtract":
        return s, t - c
    if op == "relax.multiply":
        return s * c, t * c
    return s / c, t / c


@relax.expr_functor.mutator
class _Folder(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, uses: dict):
        super().__init__(mod)
        self.uses = uses
        self.values: dict[relax.Var, relax.Expr] = {}  # original var -> original bound value
        # var -> (anchor call, channel axis, scale s, shift t): var == anchor * s + t per channel
        self.chains: dict[relax.Var, tuple[relax.Call, int, np.ndarray, np.ndarray]] = {}

    def _chain_of(self, expr):
        if not isinstance(expr, relax.Var) or self.uses.get(expr, 0) != 1:
            return None
        if expr in self.chains:
            return self.chains[expr]
        value = self.values.get(expr)
        axis = _anchor_axis(value)
        if axis is None or value.ty.dtype != "float32" or value.args[1].ty.dtype != "float32":
            return None  # (a float16 weight accumulating into float32 stays float16: tensor cores take it)
        channels = int(value.ty.shape[axis])
        return value, axis, np.ones(channels), np.zeros(channels)

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        self.values[binding.var] = value
        folded = None
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name in _AFFINE:
            lhs, rhs = value.args
            chain = self._chain_of(lhs)
            c = _const(rhs)
            if chain is not None and c is not None:
                anchor, axis, s, t = chain
                vec = _per_channel(c, anchor.ty.ndim, axis, len(s))
                if vec is not None and not (value.op.name == "relax.divide" and np.any(vec == 0)):
                    s, t = _apply(value.op.name, s, t, vec)
                    self.chains[binding.var] = folded = (anchor, axis, s, t)
        if folded is None:
            super().visit_var_binding_(binding)
            return
        # Emit the folded form; the bindings it replaces lose their only user and DCE drops them.
        anchor, axis, s, t = folded
        w = anchor.args[1].value.numpy().astype(np.float64)
        w = w * (s.reshape(-1, 1, 1, 1) if axis == 1 else s.reshape(1, -1))
        new_anchor = self.builder_.emit(relax.Call(
            anchor.op, [self.visit_expr(anchor.args[0]), relax.const(w.astype(np.float32))], anchor.attrs))
        shape = [1] * anchor.ty.ndim
        shape[axis] = len(t)
        new_value = self.builder_.normalize(relax.op.add(new_anchor, relax.const(t.astype(np.float32).reshape(shape))))
        self.builder_.emit_normalized(relax.VarBinding(binding.var, new_value))


def _use_counts(func: relax.Function) -> dict:
    counts: dict = {}

    @relax.expr_functor.visitor
    class _Uses(relax.PyExprVisitor):
        def visit_var_(self, var: relax.Var) -> None:
            counts[var] = counts.get(var, 0) + 1

        def visit_dataflow_var_(self, var) -> None:
            counts[var] = counts.get(var, 0) + 1

    _Uses().visit_expr(func)
    return counts


@register_pass("fold-affine", "per-channel add/sub/mul/div by constants after conv2d/matmul -> folded weights + bias")
def fold_affine(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="FoldAffine")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                folder = _Folder(mod, _use_counts(func))
                folder.builder_.update_func(gv, folder.visit_expr(func))
                mod = folder.builder_.get()
        return relax.transform.DeadCodeElimination()(mod)

    return run
