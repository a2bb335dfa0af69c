"""pad-channels: a conv whose output channels (per group) are not a multiple of the vector width -> a conv over
zero-padded filters, sliced back.

    conv2d(x, W: [K, C, kh, kw])  ->  strided_slice(conv2d(x, pad(W) : [K', C, kh, kw]), axis 1, [0, K))

with ``K'`` the next multiple of the vector width (16 on AVX-512). ``layout-nchwc`` blocks channels by the
largest power of two dividing ``K``: SqueezeNet's 1000-class conv got ``NCHW8c``, half-width vectors and
a third of the speed of its neighbours (5.4 ms, half of the whole network). Padded to 1008 it takes full
vectors for 0.8% more work, so a plain conv is padded only where that adds at most ``MAX_WASTE``.

A grouped conv is padded group by group (each group's filters to a multiple of the vector width, the
padded outputs dropped by reshape -> slice -> reshape): ShuffleNet's groups of 34 and 68 channels got
2- and 4-lane blocks, 5-15% of peak. There the padding pays while it cuts the vector operations by a
quarter or more (34 -> 48 channels: 3 vectors instead of 17 pairs). The filter pad is of a constant and
folds away; the slices run on the conv's output, in its kernel.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..target import vector_lanes
from . import register_pass
from .layout_nchwc import channel_block
from .rewrite import nchw_channels, rewrite_convs

MAX_WASTE = 0.125  # extra filters of a plain conv, as a fraction of the real ones
MIN_GAIN = 0.75  # a grouped conv is padded when that leaves at most this share of its vector operations


def padded_channels(channels: int, lanes: int, *, grouped: bool = False) -> int | None:
    """``channels`` rounded up to a multiple of ``lanes``, or None when it already is one or padding costs too much."""
    padded = -(-channels // lanes) * lanes
    if padded == channels:
        return None
    if grouped:
        return padded if padded / lanes <= MIN_GAIN * channels / channel_block(channels, lanes) else None
    return padded if padded - channels <= MAX_WASTE * channels else None


def _pad(bb: relax.BlockBuilder, call: relax.Call, lanes: int) -> relax.Expr:
    channels = nchw_channels(call)
    if channels is None or not str(call.args[1].ty.dtype).startswith("float"):
        return call
    c, k = channels
    a = call.attrs
    groups = int(a.groups)
    if groups > 1 and groups == c == k:
        return call  # depthwise: one channel per group, blocked across groups by layout-nchwc
    k_group = k // groups
    padded = padded_channels(k_group, lanes, grouped=groups > 1)
    if padded is None:
        return call
    w, filter_dims = call.args[1], list(call.args[1].ty.shape)[1:]
    if groups > 1:
        w = relax.op.reshape(w, [groups, k_group, *filter_dims])
    w = relax.op.nn.pad(w, [0, 0] * (groups > 1) + [0, padded - k_group] + [0, 0] * 3)
    if groups > 1:
        w = relax.op.reshape(w, [groups * padded, *filter_dims])
    y = bb.normalize(relax.op.nn.conv2d(
        call.args[0], w, strides=a.strides, padding=a.padding, dilation=a.dilation, groups=groups,
        data_layout="NCHW", kernel_layout="OIHW", out_layout="NCHW", out_dtype=a.out_dtype or None))
    if groups == 1:
        return relax.op.strided_slice(y, axes=[1], begin=[0], end=[k])
    n, _, h, wd = y.ty.shape
    y = relax.op.reshape(y, [n, groups, padded, h, wd])
    y = relax.op.strided_slice(y, axes=[2], begin=[0], end=[k_group])
    return relax.op.reshape(y, [n, k, h, wd])


@register_pass("pad-channels", "conv2d with K % vector width != 0 -> conv2d over zero-padded filters + slice")
def pad_channels(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    lanes = vector_lanes(target)

    @tvm.transform.module_pass(opt_level=0, name="PadChannels")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return rewrite_convs(mod, lambda bb, call: _pad(bb, call, lanes))

    return run
