"""Convolutions in the blocked NCHW[x]c layout, as TE computes (TOPI's x86 versions are gone from TVM 0.27).

Layouts (``ib``/``ob`` = input/output channel block, e.g. 16 = one AVX-512 vector of fp32):

    data    [N, C/ib, H, W, ib]
    kernel  [K/ob, C/g/ib, KH, KW, ib, ob]      (g groups, relax "OIHW{ib}i{ob}o"; ib | C/g, ob | K/g)
            [K/ob, 1,      KH, KW, 1,  ob]      (depthwise,  relax "OIHW1i{ob}o")
    out     [N, K/ob, OH, OW, ob]

The reduction over input channels is written as two axes (``ic_outer``, ``ic_inner``) rather than one axis
with div/mod indexing, so a schedule can order and unroll them without first splitting. Block names
(``conv2d_nchwc``, ``depthwise_conv2d_nchwc``, ``data_pad``, ``data_stride``) are what ``schedules/llvm`` matches on.

A strided 1x1 conv reads only every ``stride``-th pixel: it first gathers those pixels into a dense
``data_stride`` tensor (a quarter of the input for stride 2) and is then a stride-1 1x1 conv over it, so its
inner loop streams contiguous pixels instead of skipping every other cache line.
"""

from __future__ import annotations

from tvm import te, tirx, topi


def _pair(v) -> tuple[int, int]:
    v = [int(x) for x in (v if isinstance(v, (list, tuple)) else (v, v))]
    return (v[0], v[1]) if len(v) == 2 else (v[0], v[0])


def _pad(data: te.Tensor, padding, kernel_hw, dilation) -> tuple[te.Tensor, tuple[int, int, int, int]]:
    kh, kw = kernel_hw
    dh, dw = dilation
    top, left, bottom, right = topi.nn.get_pad_tuple(padding, ((kh - 1) * dh + 1, (kw - 1) * dw + 1))
    if top or left or bottom or right:
        data = topi.nn.pad(data, (0, 0, top, left, 0), (0, 0, bottom, right, 0), name="data_pad")
    return data, (top, left, bottom, right)


def _shape(t: te.Tensor) -> list:
    """Static dims as ints; symbolic ones (batch, image size) stay expressions."""
    return [int(d) if isinstance(d, tirx.IntImm) else d for d in t.shape]


def conv2d_nchwc(data: te.Tensor, kernel: te.Tensor, strides, padding, dilation, out_dtype: str = "float32"
                 ) -> te.Tensor:
    n, c_chunks, h, w, ib = _shape(data)
    k_chunks, kc_chunks, kh, kw, kib, ob = (int(d) for d in kernel.shape)
    assert kib == ib and c_chunks % kc_chunks == 0, "kernel and data channel blocks disagree"
    groups = c_chunks // kc_chunks
    k_chunks_per_group = k_chunks // groups
    sh, sw = _pair(strides)
    dh, dw = _pair(dilation)
    padded, (top, left, bottom, right) = _pad(data, padding, (kh, kw), (dh, dw))
    oh = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    ow = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    if (kh, kw) == (1, 1) and (sh, sw) != (1, 1):
        src = padded
        padded = te.compute((n, c_chunks, oh, ow, ib), lambda b, c, y, x, i: src[b, c, y * sh, x * sw, i],
                            name="data_stride")
        sh = sw = 1
    ic_outer = te.reduce_axis((0, kc_chunks), name="ic_outer")
    ic_inner = te.reduce_axis((0, ib), name="ic_inner")
    r_h = te.reduce_axis((0, kh), name="kh")
    r_w = te.reduce_axis((0, kw), name="kw")
    return te.compute(
        (n, k_chunks, oh, ow, ob),
        lambda b, oc, y, x, o: te.sum(
            padded[b, oc // k_chunks_per_group * kc_chunks + ic_outer, y * sh + r_h * dh, x * sw + r_w * dw,
                   ic_inner].astype(out_dtype)
            * kernel[oc, ic_outer, r_h, r_w, ic_inner, o].astype(out_dtype),
            axis=[ic_outer, r_h, r_w, ic_inner],
        ),
        name="conv2d_nchwc",
    )


def depthwise_conv2d_nchwc(data: te.Tensor, kernel: te.Tensor, strides, padding, dilation,
                           out_dtype: str = "float32") -> te.Tensor:
    n, c_chunks, h, w, cb = _shape(data)
    k_chunks, one, kh, kw, one_i, ob = (int(d) for d in kernel.shape)
    assert (k_chunks, ob, one, one_i) == (c_chunks, cb, 1, 1), "depthwise_conv2d_nchwc needs multiplier 1"
    sh, sw = _pair(strides)
    dh, dw = _pair(dilation)
    padded, (top, left, bottom, right) = _pad(data, padding, (kh, kw), (dh, dw))
    oh = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    ow = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    r_h = te.reduce_axis((0, kh), name="kh")
    r_w = te.reduce_axis((0, kw), name="kw")
    return te.compute(
        (n, c_chunks, oh, ow, cb),
        lambda b, c, y, x, o: te.sum(
            padded[b, c, y * sh + r_h * dh, x * sw + r_w * dw, o].astype(out_dtype)
            * kernel[c, 0, r_h, r_w, 0, o].astype(out_dtype),
            axis=[r_h, r_w],
        ),
        name="depthwise_conv2d_nchwc",
    )
