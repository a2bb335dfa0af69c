"""pad-channels: a conv whose output channels are not a multiple of the vector width -> a conv over zero-padded
filters, sliced back.

    conv2d(x, W: [K, C, kh, kw])  ->  strided_slice(conv2d(x, pad(W) : [K', C, kh, kw]), axis 1, [0, K))

with ``K'`` the next multiple of the vector width (16 on AVX-512). ``layout-nchwc`` blocks channels by the
largest power of two dividing ``K``: SqueezeNet's 1000-class conv got ``NCHW8c``, half-width vectors and
a third of the speed of its neighbours (5.4 ms, half of the whole network). Padded to 1008 it takes full
vectors for 0.8% more work. Only where the padding adds at most ``MAX_WASTE`` of the work; the filter pad
is of a constant and folds away, the slice runs on the conv's output (after the layout transform back).
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..target import vector_lanes
from . import register_pass

MAX_WASTE = 0.125  # extra filters, as a fraction of the real ones


def padded_channels(channels: int, lanes: int) -> int | None:
    """``channels`` rounded up to a multiple of ``lanes``, or None when it already is one or padding costs too much."""
    padded = -(-channels // lanes) * lanes
    if padded == channels or padded - channels > MAX_WASTE * channels:
        return None
    return padded


@relax.expr_functor.mutator
class _Padder(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, lanes: int):
        super().__init__(mod)
        self.lanes = lanes

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        if not isinstance(call.op, tvm.ir.Op) or call.op.name != "relax.nn.conv2d":
            return call
        a = call.attrs
        if int(a.groups) != 1 or a.data_layout != "NCHW" or a.kernel_layout != "OIHW" or a.out_layout != "NCHW":
            return call
        w_shape = call.args[1].ty.shape
        if w_shape is None or not str(call.args[1].ty.dtype).startswith("float"):
            return call
        try:
            k = int(w_shape[0])
        except TypeError:  # symbolic filter count
            return call
        padded = padded_channels(k, self.lanes)
        if padded is None:
            return call
        w = relax.op.nn.pad(call.args[1], [0, padded - k, 0, 0, 0, 0, 0, 0])
        y = relax.op.nn.conv2d(call.args[0], w, strides=a.strides, padding=a.padding, dilation=a.dilation,
                               groups=1, data_layout="NCHW", kernel_layout="OIHW", out_layout="NCHW",
                               out_dtype=a.out_dtype or None)
        return relax.op.strided_slice(self.builder_.normalize(y), axes=[1], begin=[0], end=[k])


@register_pass("pad-channels", "conv2d with K % vector width != 0 -> conv2d over zero-padded filters + slice")
def pad_channels(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    lanes = vector_lanes(target)

    @tvm.transform.module_pass(opt_level=0, name="PadChannels")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        padder = _Padder(mod, lanes)
        for gv, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                padder.builder_.update_func(gv, padder.visit_expr(func))
        return padder.builder_.get()

    return run
