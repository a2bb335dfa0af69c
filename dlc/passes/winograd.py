"""winograd: eligible 3x3 convolutions -> Winograd F(4x4,3x3) or F(2x2,3x3), chosen per layer.

    conv2d(x : NCHW{ib}c, W : OIHW{ib}i{ob}o, 3x3, stride 1, dilation 1, groups 1)
        ->  output_transform(matmul(input_transform(x), U))          (see dlc.ops.winograd)

(on cuda, where convs stay NCHW, the same computes run on the image seen as NCHW1c).

``U``, the transformed weights, is a constant computed here in float64. The bias, residual and activation
that followed the conv follow the output transform and fuse into its kernel.

On llvm the matmul is ``wino.batched_gemm`` over U packed for its register tile (``wino.pack_weight``), and
a layer whose U is small while V and M are big (VGG's 224x224 and 112x112 layers) becomes one kernel,
``wino.fused``, computed a row of tiles (or two, or a segment of one) at a time so that V and M stay in cache
(``fuse_rows``).

Which layers: ``--winograd on`` takes every eligible conv, ``off`` none, ``auto`` (default) those the cost
model below expects to win. Winograd trades multiplies for memory traffic: the transformed input and output
are (m+2)^2/m^2 times the image (2.25x for F(4,3)), and U is (m+2)^2/9 times the weights (4x for F(4,3)),
read once per inference. So it pays where compute dominates (large images, many channels) and may lose on
7x7 maps with 512 channels, where U alone is ~38 MB (17 MB at F(2,3)), and on 3-channel input images: how much
depends on the CPU (how fast U streams in against how fast it multiplies). ``choose`` estimates both sides
with the rates measured on the target's kind of CPU, ``COSTS``.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..ops import winograd as wino
from ..target import is_cuda, vector_lanes
from . import register_pass
from .rewrite import rewrite_convs

# Rates of this project's kernels on one core, per CPU, fitted by benchmarks/winograd_cost.py (least squares on
# log time over direct, F(4,3) and F(2,3), one kernel and three, on the 13 VGG-19/ResNet-50 layers): direct conv
# and Winograd matmul in FLOP/s; in bytes/s, the transforms (per byte of V and M, channels counted in whole
# vectors), V and M written to memory and read back (three-kernel form), U streamed once (three kernels) or
# re-read from cache once per row of tiles (one kernel). The CPUs differ most in how fast U arrives.
COSTS = {
    # Xeon (Cascade Lake) @ 2.5 GHz, two 512-bit FMA units a core; U streams from L3 at ~10 GB/s, so the 7x7
    # maps with 512 channels stay direct and the 14x14 ones take F(2,3).
    "cascadelake": {"direct_flops": 100e9, "gemm_flops": 100e9, "transform_bytes": 5e9, "memory_bytes": 11e9,
                    "weight_bytes": 10e9, "cache_bytes": 40e9},
    # EPYC (Zen 4), 512-bit operations on 256-bit units (half the FLOPs a cycle), L3 at ~96 GB/s a core: F(4,3)
    # wins down to the 7x7 maps.
    "znver4": {"direct_flops": 100e9, "gemm_flops": 100e9, "transform_bytes": 32e9, "memory_bytes": 13e9,
               "weight_bytes": 61e9, "cache_bytes": 170e9},
}


def rates_for(mcpu: str) -> dict:
    """The measured row nearest ``mcpu``: AMD's Zen CPUs take Zen 4's, others (Intel) Cascade Lake's. Only
    these two were measured; a CPU of neither kind gets the Cascade Lake row, the one that picks Winograd less."""
    return COSTS["znver4"] if mcpu.startswith("znver") else COSTS["cascadelake"]


# One kernel (``fuse_rows``) measured faster for U up to 4.7 MB (128->256 @56x56: 11.1 vs 12.8 ms, 128->128 @28x28:
# 1.4 vs 2.0 ms) and slower at 9.4 MB (256->256 @56x56: 19.5 vs 15.9 ms), and at V + M = 1.6 MB
# (256->256 @14x14, F(2,3): 3.2 vs 2.4 ms); V + M = 1.8 MB (128->128 @28x28) still gains. (On Cascade Lake; the
# sweep on Zen 4 agrees but for 256->256 @14x14 at F(4,3), U 9.4 MB, where one kernel was 6-17% faster.)
FUSE_MAX_U_BYTES, FUSE_MIN_VM_BYTES = 5e6, 1.7e6


def _layouts_ok(attrs) -> tuple[int, int] | None:
    """(ib, ob) of a blocked conv; (0, 0) for plain NCHW/OIHW (cuda); None otherwise."""
    d, k, o = attrs.data_layout, attrs.kernel_layout, attrs.out_layout or attrs.data_layout
    if (d, k, o) == ("NCHW", "OIHW", "NCHW"):
        return 0, 0
    if not (d.startswith("NCHW") and d.endswith("c") and o.startswith("NCHW") and o.endswith("c")):
        return None
    try:
        ib, ob = int(d[4:-1]), int(o[4:-1])
    except ValueError:
        return None
    return (ib, ob) if k == f"OIHW{ib}i{ob}o" else None


def estimate(c: int, k: int, out_h: int, out_w: int, m: int | None, rates: dict, fused: bool | None = None) -> float:
    """Seconds for one image at ``rates`` (a ``COSTS`` row): direct conv if m is None, else Winograd
    F(m x m, 3 x 3), as one kernel or three as ``one_kernel`` decides (or as ``fused`` says)."""
    if m is None:
        return 2 * 9 * c * k * out_h * out_w / rates["direct_flops"]
    a2, rows, p = (m + 2) ** 2, wino.tiles(out_h, m), wino.tiles(out_h, m) * wino.tiles(out_w, m)
    gemm = 2 * a2 * wino.padded_tiles(p, k) * c * k / rates["gemm_flops"]
    vectors = -(-c // 16) * 16 + -(-k // 16) * 16
    transforms = 4 * a2 * p * vectors / rates["transform_bytes"]
    u = 4 * a2 * c * k
    if one_kernel(c, k, m, p, wino.tiles(out_w, m)) if fused is None else fused:
        return gemm + transforms + rows * u / rates["cache_bytes"]
    return gemm + transforms + 8 * a2 * p * (c + k) / rates["memory_bytes"] + u / rates["weight_bytes"]


def fuse_rows(c: int, k: int, m: int, tiles: int) -> bool:
    """One kernel, a row of tiles at a time (``wino.fused``)? It reads U once per row of tiles instead of
    writing V and M to memory and reading them back: worth it where U is small (<= 5 MB: 128 x 256 channels
    at F(4,3)) and V and M would not stay in cache (> 1.7 MB together; below that three kernels are faster)."""
    a2 = (m + 2) ** 2
    return a2 * c * k * 4 <= FUSE_MAX_U_BYTES and a2 * tiles * (c + k) * 4 > FUSE_MIN_VM_BYTES


def row_fits(c: int, row: int) -> bool:
    """Can the one-kernel form take a row of ``row`` tiles? A register tile must divide it; with fewer than
    ``SMALL_C`` input channels M is computed per output tile and no register tile is needed."""
    return c < wino.SMALL_C or wino.row_tile(row) is not None


def one_kernel(c: int, k: int, m: int, tiles: int, row: int) -> bool:
    """The one-kernel form for this layer (``tiles`` in all, ``row`` a row)? Where ``fuse_rows`` says so and
    the row fits (``row_fits``)."""
    return fuse_rows(c, k, m, tiles) and row_fits(c, row)


def choose(c: int, k: int, out_h: int, out_w: int, mode: str, mcpu: str = "", rates: dict | None = None) -> int | None:
    """Tile size m (4 or 2) for this layer on ``mcpu`` (or at ``rates``), or None for direct convolution. With
    fewer than ``SMALL_C`` input channels only F(2,3) (see ``dlc.ops.winograd.SMALL_C``)."""
    if mode == "off":
        return None
    rates = rates or rates_for(mcpu)
    options = {m: estimate(c, k, out_h, out_w, m, rates) for m in ((2,) if c < wino.SMALL_C else (4, 2))}
    best = min(options, key=options.get)
    if mode == "on":
        return best
    return best if options[best] < estimate(c, k, out_h, out_w, None, rates) else None


def _oihw(weight: np.ndarray, ib: int, ob: int) -> np.ndarray:
    """[K/ob, C/ib, 3, 3, ib, ob] -> [K, C, 3, 3] (a plain OIHW weight when ib == ob == 0)."""
    if ib == 0:
        return weight
    kc, cc, kh, kw, _, _ = weight.shape
    return weight.transpose(0, 5, 1, 4, 2, 3).reshape(kc * ob, cc * ib, kh, kw)


def _conv_like(bb: relax.BlockBuilder, te_func, *args, name: str) -> relax.Call:
    """call_te, with the kernel marked out-ewise-fusable (4) as a conv is: the transforms are injective, and
    FuseOps would otherwise merge their producers (the previous layer's output transform) or injective
    consumers (a concatenate) into their kernels. AnnotateTIROpPattern keeps a pattern that is set."""
    call = bb.call_te(te_func, *args, primfunc_name_hint=name)
    gv = call.args[0]
    bb.update_func(gv, bb.get()[gv].with_attr("op_pattern", 4))
    return call


def _rewrite(bb: relax.BlockBuilder, call: relax.Call, mode: str, lanes: int, mcpu: str) -> relax.Expr:
    """One conv2d -> its Winograd form, or the call itself. ``lanes`` is 0 on cuda: plain matmul, U unpacked."""
    a = call.attrs
    blocks = _layouts_ok(a)
    weight = call.args[1]
    if blocks is None or int(a.groups) != 1 or not isinstance(weight, tvm.ir.GenericConst):
        return call
    if [int(s) for s in a.strides] != [1, 1] or [int(d) for d in a.dilation] != [1, 1]:
        return call
    w = weight.value.numpy()
    if w.shape[2:4] != (3, 3) or call.ty.shape is None:
        return call
    try:
        out_shape = tuple(int(d) for d in call.ty.shape.values)
        in_shape = tuple(int(d) for d in call.args[0].ty.shape.values)
    except TypeError:  # symbolic shapes
        return call
    data = call.args[0]
    if blocks == (0, 0):  # NCHW (cuda): the same computes, seen as NCHW1c (reshapes are free)
        data = bb.emit(relax.op.reshape(data, (*in_shape, 1)))
        in_shape, out_shape = (*in_shape, 1), (*out_shape, 1)
    c, k = in_shape[1] * in_shape[4], out_shape[1] * out_shape[4]
    m = choose(c, k, out_shape[2], out_shape[3], mode, mcpu)
    if m is None:
        return call
    u = wino.transform_weight(_oihw(w, *blocks), m)
    padding = tuple(int(p) for p in a.padding)
    tiles = in_shape[0] * wino.tiles(out_shape[2], m) * wino.tiles(out_shape[3], m)
    row = wino.tiles(out_shape[3], m)
    if lanes and one_kernel(c, k, m, tiles, row):
        packed = wino.pack_weight(u, wino.gemm_tiles(row, k, lanes)[1])
        return bb.call_te(wino.fused, data, relax.const(packed), m, padding, out_shape,
                          primfunc_name_hint=f"winograd{m}_conv")
    p_pad = wino.padded_tiles(tiles, k, lanes) if lanes else tiles
    v = bb.emit(_conv_like(bb, wino.input_transform, data, m, padding, p_pad, name=f"winograd{m}_input"))
    if lanes:
        packed = wino.pack_weight(u, wino.gemm_tiles(p_pad, k, lanes)[1])
        mm = bb.emit(bb.call_te(wino.batched_gemm, v, relax.const(packed), primfunc_name_hint=f"winograd{m}_gemm"))
    else:
        mm = bb.emit(relax.op.matmul(v, relax.const(u)))
    y = _conv_like(bb, wino.output_transform, mm, m, out_shape, name=f"winograd{m}_output")
    return relax.op.reshape(y, out_shape[:4]) if blocks == (0, 0) else y


@register_pass("winograd", "3x3 stride-1 conv2d -> Winograd F(4x4,3x3)/F(2x2,3x3) per layer (--winograd)")
def winograd(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    mode = getattr(options, "winograd", "auto")

    @tvm.transform.module_pass(opt_level=0, name="Winograd")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        lanes = 0 if is_cuda(target) else vector_lanes(target)
        mcpu = "" if is_cuda(target) else str(target.attrs.get("mcpu", ""))
        return rewrite_convs(mod, lambda bb, call: _rewrite(bb, call, mode, lanes, mcpu))

    return run
