"""layout-nchwc: NCHW convolutions -> the blocked NCHW[x]c layout, chosen per convolution (llvm).

    conv2d(x: NCHW, W: OIHW)  ->  layout_transform(x) -> conv2d(NCHW{ib}c, OIHW{ib}i{ob}o) -> ... -> NCHW

``x`` is the target's fp32 vector width (16 for AVX-512): an output block ``ob`` of 16 channels is one vector
register, so the conv's inner loop is one broadcast + one FMA per input channel and output pixel. Block sizes
are chosen per conv: the largest divisor of the channel count up to the vector width (a 3-channel image keeps
``ib = 3``). Depthwise convs take ``NCHW{b}c`` with ``OIHW1i{b}o``; other grouped convs stay NCHW.

TVM's ``ConvertLayout`` carries the layout through everything that accepts it (bias adds, ReLU, residual
adds, pooling, concat of whole blocks) and transforms back only before ops that cannot take it, so the
transforms sit at the graph's edges. The weight transforms are of constants: ``fold-constant`` pre-packs
them at compile time, and ``cse`` merges repeated transforms of one tensor.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..target import vector_lanes
from . import register_pass


def channel_block(channels: int, lanes: int) -> int:
    """The largest divisor of ``channels`` that is at most ``lanes``."""
    return max(b for b in range(1, min(channels, lanes) + 1) if channels % b == 0)


def conv_layouts(call: relax.Call, lanes: int) -> list[str] | None:
    """[data, kernel, out] layouts for one NCHW conv2d, or None to leave it NCHW."""
    attrs = call.attrs
    if attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW":
        return None
    x_shape, w_shape = call.args[0].ty.shape, call.args[1].ty.shape
    if x_shape is None or w_shape is None or len(x_shape) != 4 or len(w_shape) != 4:
        return None
    try:
        c, k = int(x_shape[1]), int(w_shape[0])
    except TypeError:  # symbolic channels
        return None
    groups = int(attrs.groups)
    ob = channel_block(k, lanes)
    if groups == 1:
        ib = channel_block(c, lanes)
        return [f"NCHW{ib}c", f"OIHW{ib}i{ob}o", f"NCHW{ob}c"]
    if groups == c == k:
        return [f"NCHW{ob}c", f"OIHW1i{ob}o", f"NCHW{ob}c"]
    return None


@register_pass("layout-nchwc", "conv2d NCHW -> blocked NCHW[x]c per conv (x = vector width), transforms at the edges")
def layout_nchwc(target: tvm.target.Target) -> tvm.transform.Pass:
    lanes = vector_lanes(target)

    def layout_cb(call: relax.Call) -> dict:
        if call.op.name != "relax.nn.conv2d":
            return {}
        layouts = conv_layouts(call, lanes)
        return {"relax.nn.conv2d": layouts} if layouts else {}

    return relax.transform.ConvertLayout({}, layout_cb=layout_cb)
