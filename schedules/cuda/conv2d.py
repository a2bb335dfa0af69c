"""Direct 2-D convolution (dense or grouped), with its fused epilogue (bias, batch-norm arithmetic, ReLU...).

Matches a contraction with a kernel window: a reduction block ``out += data * weight`` whose data index
holds ``y * stride + ry * dilation`` (see ``_common``). Matched by block structure, so NCHW/OIHW (what
TVM's legalizer emits today) and NHWC/HWIO or OHWI (what a layout pass may choose) both fit, and so does a
1x1 convolution (its weight keeps the unit window: ``W[f, c, 0, 0]``). The padding block is inlined into the shared-memory load of
the input tile; the epilogue runs on the register tile. Depthwise convolutions go to ``depthwise.py``.
"""

from dlc.schedule import rule

from . import _common as C

# Tried in order until a plan gives enough thread blocks to fill the GPU: (threads, register tile).
CONFIGS = [
    dict(threads=256, inner={"weight": 4, "data": 2}, thread_caps={"data": 16, "weight": 16}, k_inner=16),
    dict(threads=128, inner={"weight": 4, "data": 2}, thread_caps={"data": 16, "weight": 16}, k_inner=16),
    dict(threads=128, inner={"weight": 2, "data": 2}, thread_caps={"data": 16, "weight": 16}, k_inner=8),
    dict(threads=64, inner={"weight": 2, "data": 1}, thread_caps={"data": 16, "weight": 16}, k_inner=8),
    dict(threads=64, inner={"weight": 1, "data": 1}, thread_caps={"data": 16, "weight": 16}, k_inner=8),
]


def is_conv(c: C.Contraction) -> bool:
    return c.is_convolution() and not C.is_depthwise(c) and not C.is_gemv(c)


@rule("cuda", order=20)
def conv2d_direct(func, target):
    return C.schedule_contraction(func, target, CONFIGS, is_conv)
