"""layout-nchwc: NCHW convolutions -> the blocked NCHW[x]c layout, chosen per convolution (llvm).

    conv2d(x: NCHW, W: OIHW)  ->  layout_transform(x) -> conv2d(NCHW{ib}c, OIHW{ib}i{ob}o) -> ... -> NCHW

``x`` is the target's fp32 vector width (16 for AVX-512): an output block ``ob`` of 16 channels is one vector
register, so the conv's inner loop is one broadcast + one FMA per input channel and output pixel. Block sizes
are chosen per conv: the largest power of two dividing the channel count, up to the vector width (a 3-channel
image gets ``ib = 1``). Depthwise convs take ``NCHW{b}c`` with ``OIHW1i{b}o``; other grouped convs stay NCHW
here (TVM's layout inference fails on them) and ``layout-grouped`` blocks them afterwards.

TVM's ``ConvertLayout`` carries the layout through everything that accepts it (bias adds, ReLU, residual
adds, pooling, concat of whole blocks) and transforms back only before ops that cannot take it, so the
transforms sit at the graph's edges. The weight transforms are of constants: ``fold-constant`` pre-packs
them at compile time, and ``cse`` merges repeated transforms of one tensor.
"""

from __future__ import annotations

import logging

import tvm
from tvm import relax

from ..target import vector_lanes
from . import register_pass

log = logging.getLogger("dlc.passes")


def channel_block(channels: int, lanes: int) -> int:
    """The largest power of two that divides ``channels`` and is at most ``lanes``.

    Powers of two only: TVM's layout conversion between two blocked layouts fails for some other pairs
    (NCHW12c -> NCHW6c: "Invalid layout axis"), and odd vector widths generate poor code anyway.
    """
    b = 1
    while b * 2 <= lanes and channels % (b * 2) == 0:
        b *= 2
    return b


def conv_layouts(call: relax.Call, lanes: int) -> list[str] | None:
    """[data, kernel, out] layouts for one NCHW conv2d, or None to leave it NCHW."""
    attrs = call.attrs
    if attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW":
        return None
    if not str(call.args[0].ty.dtype).startswith("float"):
        return None  # integer convs (ConvInteger, quantized) stay NCHW: the blocked schedules are for floats
    x_shape, w_shape = call.args[0].ty.shape, call.args[1].ty.shape
    if x_shape is None or w_shape is None or len(x_shape) != 4 or len(w_shape) != 4:
        return None
    try:
        c, k = int(x_shape[1]), int(w_shape[0])
    except TypeError:  # symbolic channels
        return None
    groups = int(attrs.groups)
    if groups == c == k:
        b = channel_block(k, lanes)
        return [f"NCHW{b}c", f"OIHW1i{b}o", f"NCHW{b}c"]
    if groups == 1:
        ib, ob = channel_block(c, lanes), channel_block(k, lanes)
        return [f"NCHW{ib}c", f"OIHW{ib}i{ob}o", f"NCHW{ob}c"]
    return None  # other grouped convs: layout-grouped, after this pass


@register_pass("layout-nchwc", "conv2d NCHW -> blocked NCHW[x]c per conv (x = vector width), transforms at the edges")
def layout_nchwc(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    lanes = vector_lanes(target)

    def layout_cb(call: relax.Call) -> dict:
        if not isinstance(call.op, tvm.ir.Op) or call.op.name != "relax.nn.conv2d":
            return {}
        # An explicit NCHW for the convs we leave alone: with no entry, ConvertLayout would carry the blocked
        # layout of their input into them (and fail on grouped convs).
        return {"relax.nn.conv2d": conv_layouts(call, lanes) or ["NCHW", "OIHW"]}

    convert = relax.transform.ConvertLayout({}, layout_cb=layout_cb)

    @tvm.transform.module_pass(opt_level=0, name="LayoutNCHWc")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if "R.nn.conv2d(" not in mod.script(show_meta=False):
            return mod  # nothing to block; and ConvertLayout has failed on convless graphs (GRU: IndexError)
        try:
            return convert(mod)
        except Exception as e:  # noqa: BLE001 (TVM raises InternalError, IndexError, ...)
            # TVM's layout inference still has holes (tuple-valued ops, some reshapes, stack): the model then
            # runs NCHW, correct but slower. Say so rather than fail the compile.
            log.warning("layout-nchwc left the model in NCHW: %s", str(e).strip().splitlines()[-1][:200])
            return mod

    return run
