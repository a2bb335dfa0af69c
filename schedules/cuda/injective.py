"""Elementwise, broadcast, concat, reshape and other injective kernels (no reduction).

Everything is inlined into the kernel's outputs; each output gets one thread per element, or one thread
per four elements with 128-bit loads and stores when every access along the innermost axis is a plain
aligned row (no concat offsets, no strides). Transposes that would make those reads strided go to
``transpose.py`` first.
"""

from tvm.s_tir.dlight.base import try_inline

from dlc.schedule import rule

from . import _common as C


@rule("cuda", order=90)
def injective(func, target):
    k = C.analyze(func)
    if k is None or k.reductions():
        return None
    outputs = try_inline(k.sch, k.blocks)
    for out in outputs:
        C.bind_spatial(k.sch, out.block_rv, vector=C.vector_width(k.sch, out.block_rv))
    return k.sch
