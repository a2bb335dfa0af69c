"""
Winograd against direct convolution, on a VGG layer
===================================================

A 3x3 convolution computes each output from 9 inputs per channel pair: 144 multiplies for a 4x4 block of
outputs. Winograd's F(4x4, 3x3) gets the same 4x4 block with 36, by moving into a transformed space where the
convolution is an elementwise product (Lavin & Gray, 2016). dlc rewrites eligible convolutions (3x3, stride 1,
no groups) into three kernels: an input transform, a batch of 36 matrix multiplies, and an output transform
that also applies the layer's bias and ReLU. (Where the transformed weights are small and the image large, as
in VGG's first layers, the three come as one kernel, ``winograd4_conv``, working a row of tiles at a time.)

This tutorial compiles one layer of VGG-19 both ways, shows what ``--explain`` reports, checks both against
onnxruntime, and times them side by side. ``CI=true`` uses a smaller layer and fewer runs.
"""

# %%
# One VGG-19 layer as an ONNX model
# ---------------------------------
import os
import sys
import time
from pathlib import Path

import numpy as np

import dlc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from winograd import conv_model  # noqa: E402  (the per-layer benchmark's model builder)

ci = os.environ.get("CI") == "true"
channels, size = (64, 28) if ci else (256, 56)  # VGG-19's conv3_2..conv3_4: 256 -> 256 channels at 56x56
model = conv_model(channels, channels, size)
x = {"x": np.random.default_rng(0).standard_normal((1, channels, size, size)).astype(np.float32)}
print(f"layer: {channels} -> {channels} channels, {size}x{size}, "
      f"{2 * 9 * channels * channels * size * size / 1e9:.2f} GFLOP as a direct convolution")

# %%
# Compile it both ways
# --------------------
# ``winograd="off"`` keeps the direct convolution; ``"on"`` takes Winograd for every eligible layer (the
# default, ``"auto"``, decides per layer with a cost model). ``kernels`` holds what ``dlc compile --explain``
# prints: one row per kernel, with the rule that scheduled it.
direct = dlc.compile(model, winograd="off")
winograd = dlc.compile(model, winograd="on")
for name, compiled in (("direct", direct), ("winograd", winograd)):
    print(f"\n{name}:")
    for k in compiled.kernels:
        print(f"  {k['name']:55s} {k['origin']:22s} {k['gflop']:7.3f} GFLOP")

# %%
# Same numbers as onnxruntime?
# ----------------------------
# The transforms use fractions like 1/4 and 5/2, so Winograd rounds a little differently. On random weights we
# measured a relative error around 2-3e-6 for F(4x4, 3x3), against ~1e-6 for the direct convolution.
import onnxruntime as ort  # noqa: E402

reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)[0]
for name, compiled in (("direct", direct), ("winograd", winograd)):
    err = float(np.abs(compiled.run(x)["y"] - reference).max() / np.abs(reference).max())
    print(f"{name:9s} max error relative to the output's magnitude: {err:.1e}")
    assert err < 2e-5

# %%
# Time them side by side
# ----------------------
# Alternating the two, run by run, so that any other load on the machine hits both alike; the median of each.
runs = 5 if ci else 20
times = {"direct": [], "winograd": []}
for _ in range(runs):
    for name, compiled in (("direct", direct), ("winograd", winograd)):
        t0 = time.perf_counter()
        compiled.run(x)
        times[name].append(time.perf_counter() - t0)
d, w = (np.median(times[name]) * 1e3 for name in ("direct", "winograd"))
print(f"\ndirect {d:.2f} ms, winograd {w:.2f} ms: {d / w:.2f}x "
      f"({direct.num_threads} threads; benchmarks/winograd.py does this for every VGG-19 and ResNet-50 layer)")
