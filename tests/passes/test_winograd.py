"""winograd: 3x3 stride-1 convs become input transform + batched matmul + output transform, per layer."""

import re

import numpy as np
import pytest
from helpers import conv_model, kernels, lower, make_model, ort_run, rand
from onnx import helper

import dlc
from dlc.passes.winograd import choose

# F(4x4,3x3)'s transforms amplify rounding: relative to the output's magnitude we measured 2-3e-6 on random
# weights (F(2x2,3x3): ~1.5e-6), against ~1e-6 for the direct conv. The tests allow 2e-5.
REL_TOL = 2e-5


HAND = {"hand:winograd_conv", "hand:winograd_input", "hand:winograd_gemm", "hand:winograd_output"}


# Small U and big V, M: one kernel (winograd_conv, a row of tiles at a time; with 3 input channels M per output
# tile); otherwise three kernels
@pytest.mark.parametrize("c,k,hw,kernel", [(32, 32, 64, "conv"), (32, 32, 61, "conv"), (3, 32, 96, "conv"),
                                           (3, 32, 118, "conv"), (3, 32, 100, "conv"),  # F(2,3): 59, 50 a row
                                           (64, 64, 120, "conv"), (128, 128, 28, "conv"),  # see test_task_shapes
                                           (32, 48, 16, "input"),
                                           (32, 48, 14, "input"), (32, 48, 13, "input"), (256, 160, 10, "input")])
def test_winograd_matches_onnxruntime(c, k, hw, kernel):
    model = conv_model(c=c, k=k, hw=hw)
    x = {"x": rand(1, c, hw, hw, seed=hw)}
    compiled = dlc.compile(model, winograd="on")
    assert any(re.search(rf"winograd\d_{kernel}", k_["name"]) for k_ in compiled.kernels)
    assert {k_["origin"] for k_ in compiled.kernels if "winograd" in k_["name"]} <= HAND
    y, ref = compiled.run(x)["y"], ort_run(model, x)[0]
    assert np.abs(y - ref).max() / np.abs(ref).max() < REL_TOL


def test_modes():
    model = conv_model(c=64, k=64, hw=28)
    assert any("winograd" in k for k in kernels(lower(model, "fuse", winograd="on")))
    assert not any("winograd" in k for k in kernels(lower(model, "fuse", winograd="off")))
    # 1x1 and strided convs are never Winograd, whatever the mode
    assert not any("winograd" in k for k in kernels(lower(conv_model(kernel=1, pad=0), "fuse", winograd="on")))
    assert not any("winograd" in k for k in kernels(lower(conv_model(stride=2), "fuse", winograd="on")))


@pytest.mark.parametrize("mcpu", ["cascadelake", "znver4"])
def test_cost_model_picks_per_layer(mcpu):
    assert choose(64, 64, 56, 56, "auto", mcpu) == 4          # big image: F(4,3) wins
    assert choose(128, 128, 28, 28, "auto", mcpu) == 4
    assert choose(64, 64, 56, 56, "off", mcpu) is None
    assert choose(3, 64, 224, 224, "on", mcpu) == 2          # fewer than SMALL_C input channels: F(2,3) only


def test_cost_model_follows_the_cpu():
    # 512 channels at 7x7 and 14x14 (U: 17 MB at F(2,3), 38 MB at F(4,3)): U streams in at a fitted 10 GB/s on
    # the Xeon, 61 GB/s on Zen 4 (benchmarks/results/2026-11-22/winograd_cost.md)
    assert choose(512, 512, 7, 7, "auto", "cascadelake") is None
    assert choose(512, 512, 14, 14, "auto", "cascadelake") == 2
    assert choose(512, 512, 7, 7, "auto", "znver4") == 4
    assert choose(512, 512, 14, 14, "auto", "znver4") == 4
    assert choose(3, 64, 224, 224, "auto", "cascadelake") is None  # 3 input channels: direct there
    # the pass reads the target's CPU
    model = conv_model(c=512, k=512, hw=7)
    for target, expected in (("llvm:cascadelake", False), ("llvm:znver4", True)):
        assert any("winograd" in k for k in kernels(lower(model, "fuse", target=target))) == expected, target


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_winograd_kernels_compile_for_cuda(arch):
    compiled = dlc.compile(conv_model(c=64, k=64, hw=28), f"cuda:{arch}", winograd="on")
    built = {k["name"] for k in compiled.metadata["cuda"]["kernels"]}
    assert any("winograd4_input" in name for name in built)  # the NCHW -> NCHW1c reshape fuses in front
    assert any("winograd4_output" in name for name in built)
    assert all(k["spill_stores"] == 0 for k in compiled.metadata["cuda"]["kernels"])


def test_winograd_feeding_a_concatenate():
    # Two Winograd convs (three-kernel form) into a Concat, as in Inception: the output transforms keep their
    # own kernels (a concatenate is not their epilogue), then a second Winograd layer reads the result.
    w1, w2 = (rand(32, 64, 3, 3, seed=s, scale=0.06) for s in (1, 2))
    w3 = rand(64, 64, 3, 3, seed=3, scale=0.06)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1] * 4), helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1] * 4),
             helper.make_node("Concat", ["ra", "b"], ["c"], axis=1),
             helper.make_node("Conv", ["c", "w3"], ["y"], pads=[1] * 4)]
    model = make_model(nodes, [("x", [1, 64, 14, 14])], [("y", [1, 64, 14, 14])], [("w1", w1), ("w2", w2), ("w3", w3)])
    x = {"x": rand(1, 64, 14, 14, seed=4)}
    compiled = dlc.compile(model, winograd="on")
    assert sum("winograd" in k["name"] and "input" in k["name"] for k in compiled.kernels) >= 2
    y, ref = compiled.run(x)["y"], ort_run(model, x)[0]
    assert np.abs(y - ref).max() / np.abs(ref).max() < REL_TOL


def _scheduled(c: int, k: int, hw: int) -> dict[str, str]:
    """The scheduled kernels of a c -> k conv at hw x hw with Winograd on: name -> TVMScript."""
    from tvm import tirx

    mod = lower(conv_model(c=c, k=k, hw=hw), "schedule", winograd="on")
    return {gv.name_hint: f.script() for gv, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)}


def _kernel(c: int, k: int, hw: int, name: str) -> str:
    """The script of the one scheduled kernel whose name contains ``name``."""
    (script,) = [script for kernel, script in _scheduled(c, k, hw).items() if name in kernel]
    return script


def test_transform_stages_stay_in_registers():
    # The input transform's patch and B^T d, and the output transform's M A, are inlined into the stage that
    # stores: as scheduled `local` buffers they were stack workspaces, and the transforms ran 5-13% slower.
    transforms = {name: script for name, script in _scheduled(64, 64, 14).items()
                  if re.search(r"winograd\d_(input|output)", name)}
    assert len(transforms) == 2, list(transforms)
    for name, script in transforms.items():  # neither their blocks nor buffers are left
        assert not re.search(r"winograd_(input_patch|input_rows|output_cols)", script), name


def test_gemm_schedule():
    # The matmul's register tile sums into M itself (LLVM keeps it in registers over C); a `local` cache of the
    # tile came with a workspace per task, a memset per tile and a second store (5-10% slower per layer).
    for hw, name in [(14, "winograd4_gemm"), (64, "winograd4_conv")]:  # three-kernel form, one-kernel form
        script = _kernel(64, 64, hw, name)
        assert "winograd_gemm_update" in script and "winograd_gemm_local" not in script, name
    # And a task walks down the tiles under one panel of U (loops: plane b, output-channel panel, tile block),
    # also where U[b] would fit L1 whole (64 x 64 channels: 16 KB), which was 4-8% slower the other way round.
    assert re.search(r"for ax0, ax2_0, ax1_0 in T\.grid\(T\.int64\(36\), T\.int64\(2\), T\.int64\(2\)\)",
                     _kernel(64, 64, 64, "winograd4_conv"))


def test_image_edges_branch_free_in_one_kernel():
    # A pixel outside the image is zero: the one-kernel form loads at the clamped position and selects (4-8%
    # faster there), the three-kernel input transform branches around the load (faster there: bound by stores).
    for hw, name, branches in [(64, "winograd4_conv", False), (14, "winograd4_input", True)]:
        assert ("T.if_then_else" in _kernel(64, 64, hw, name)) == branches, name


def test_rgb_input_transform_vectorized_across_tiles():
    # With 3 input channels there is no channel vector: the input transform puts 16 of a row's 48 tiles
    # (F(2,3)) in one (VGG's first layer at F(4,3), Cascade Lake: 2.98 -> 2.50 ms against per tile in scalars) and
    # stores V as [b, c, p], contiguous.
    script = _kernel(3, 32, 96, "winograd2_conv")
    assert re.search(r"winograd_input = T\.sblock_alloc_buffer\(\(T\.int64\(16\), T\.int64\(3\), T\.int64\(\d+\)\)\)", script)
    assert re.search(r'T\.vectorized\(T\.int64\(16\)\):\s+with T\.sblock\("winograd_input"\)', script)


def test_task_shapes():
    # The one-kernel form's tasks (parallel loop): 64 -> 64 channels at 120x120, a row of 30 tiles has 0.55 MB
    # of V and M while U is 0.6 MB: 10-tile segments, 3 tasks per row of tiles (90). At 64x64, 0.3 MB a row:
    # whole rows (16). 128 -> 128 at 28x28 (U 2.4 MB, more than L2): two rows per task, the last one alone (4).
    for c, hw, tasks in [(64, 120, 90), (64, 64, 16), (128, 28, 4)]:
        assert re.search(rf"T\.parallel\((T\.int64\()?{tasks}\b", _kernel(c, c, hw, "winograd4_conv")), (c, hw)
    # With 3 input channels (M per output tile): the channel block outside the row's tiles, so that its part of
    # U stays in L1 across the row (18% faster than tiles outside at 224x224)
    assert re.search(r"for kc, x_0 in T\.grid\(T\.int64\(2\), T\.int64\(48\)\)", _kernel(3, 32, 96, "winograd2_conv"))
