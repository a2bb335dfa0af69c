"""Depthwise 2-D convolution (one input channel per output channel), with its fused epilogue.

Matches a contraction with a kernel window, no input-channel reduction and the channel axis indexing data,
weight and output alike (grouped convolutions with several channels per group go to ``conv2d.py``). Any
layout: the roles come from the block's indices. There is no reuse across channels, only across the
overlapping windows of neighbouring outputs, so each thread block takes a few channels and a patch of
pixels, loads the patch (with its halo) and the channels' filters into shared memory, and each thread
computes a short row of outputs.
"""

from dlc.schedule import rule

from . import _common as C

CONFIGS = [
    dict(threads=128, inner={"data": 2}, thread_caps={"data": 16, "batch": 8}, k_inner=1),
    dict(threads=64, inner={"data": 2}, thread_caps={"data": 8, "batch": 4}, k_inner=1),
    dict(threads=64, inner={"data": 1}, thread_caps={"data": 8, "batch": 2}, k_inner=1),
]


@rule("cuda", order=15)
def depthwise_conv2d(func, target):
    return C.schedule_contraction(func, target, CONFIGS, C.is_depthwise)
