"""legalize: Relax ops -> call_tir of TensorIR PrimFuncs, TVM's legalization plus dlc's own.

dlc's own cover what TVM 0.27 cannot legalize:

    R.nn.conv2d(data_layout="NCHW{ib}c", kernel_layout="OIHW{ib}i{ob}o")  -> dlc.ops.conv2d_nchwc
    R.nn.conv2d(groups=C, data_layout="NCHW{b}c", kernel_layout="OIHW1i{b}o") -> dlc.ops.depthwise_conv2d_nchwc

(TVM's conv2d legalization only takes 4-letter layouts.) Everything else goes to TVM's ``LegalizeOps``.
"""

from __future__ import annotations

import re

import tvm
from tvm import relax

from ..ops import conv2d_nchwc, depthwise_conv2d_nchwc
from . import register_pass

_BLOCKED = re.compile(r"^NCHW(\d+)c$")


def _conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    attrs = call.attrs
    data_m = _BLOCKED.match(attrs.data_layout)
    if not data_m or not _BLOCKED.match(attrs.out_layout or attrs.data_layout):
        # 4-letter layouts: TVM's own legalization
        return tvm.relax.transform.legalize_ops.nn._nn_conv2d(bb, call)
    out_dtype = attrs.out_dtype if attrs.out_dtype else call.args[0].ty.dtype
    common = dict(strides=[int(s) for s in attrs.strides], padding=[int(p) for p in attrs.padding],
                  dilation=[int(d) for d in attrs.dilation], out_dtype=str(out_dtype))
    if int(attrs.groups) == 1:
        return bb.call_te(conv2d_nchwc, call.args[0], call.args[1], primfunc_name_hint="conv2d_nchwc", **common)
    return bb.call_te(depthwise_conv2d_nchwc, call.args[0], call.args[1],
                      primfunc_name_hint="depthwise_conv2d_nchwc", **common)


LEGALIZATIONS = {"relax.nn.conv2d": _conv2d}


@register_pass("legalize", "Relax ops -> call_tir of TensorIR PrimFuncs (TVM's, plus dlc's blocked-layout convs)",
               required=True)
def legalize(target: tvm.target.Target) -> tvm.transform.Pass:
    return relax.transform.LegalizeOps(customize_legalize_map=LEGALIZATIONS)
