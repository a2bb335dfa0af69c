"""Winograd convolution F(m x m, 3 x 3) in the blocked NCHW[x]c layout, as three steps:

    V[e*a+n, p, c] = (B^T d_p B)[e, n]          input transform, one a x a tile d_p per output tile p
    M[b, p, k]     = sum_c V[b, p, c] U[b, c, k] a batch of a*a matmuls (U: the weights, transformed at compile
                                                 time by ``transform_weight``)
    y_p            = A^T M_p A                  output transform, an m x m block of the output

with ``a = m + 2``: F(4x4, 3x3) (a = 6) does 36 multiplies per 16 outputs and channel pair where a direct conv
does 144, F(2x2, 3x3) (a = 4) 16 per 4 instead of 36 (Lavin & Gray, 2016). The transform matrices are TVM's
Cook-Toom ones (``topi.nn.winograd_util``); the transforms are written as two separable stages each, every
stage an explicit sum over the matrix's nonzero entries (no reduction blocks), and the channel block is
innermost everywhere, so every step vectorizes over channels.

On llvm the matmul is ``batched_gemm`` over U packed by ``pack_weight`` (its register tile's output channels
contiguous) and V padded to whole register tiles (``padded_tiles``); on cuda it is an ordinary Relax matmul.
Block names (``winograd_input_patch``/``_rows``/``winograd_input``, ``winograd_gemm``,
``winograd_output_cols``/``winograd_output``) are what ``schedules/llvm/winograd.py`` matches on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tvm import te, tirx
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

# Fewer input channels than this (an RGB image): the one-kernel form multiplies per output tile, M of one tile
# in a workspace (schedules/llvm/winograd.py), and only F(2x2, 3x3) is taken: its 16 vectors of M per tile ran
# VGG's 3 -> 64 channel layer at 224x224 in 1.60-1.74 ms against F(4x4, 3x3)'s 36 in 2.06-2.18 ms (Zen 4).
SMALL_C = 8


def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, G) of F(m x m, 3 x 3): A is (a, m), B is (a, a), G is (a, 3)."""
    a, b, g = _cook_toom_convolution(_interpolation_points(m + 2), m, 3)
    return a, b, g


def transform_weight(weight_oihw: np.ndarray, m: int) -> np.ndarray:
    """U[e*a+n, c, k] = (G w_kc G^T)[e, n], computed in float64 at compile time."""
    _, _, g = matrices(m)
    u = np.einsum("ei,kcij,nj->enck", g, weight_oihw.astype(np.float64), g)
    a = m + 2
    return u.reshape(a * a, weight_oihw.shape[1], weight_oihw.shape[0]).astype(weight_oihw.dtype)


def _dot(mat: np.ndarray, j, term: Callable[[int], tirx.PrimExpr]) -> tirx.PrimExpr:
    """sum_r mat[r, j] * term(r) for a loop variable j: per r a select chain over j, which folds to a constant
    (and a zero term to nothing) once the loops unroll. Rows of zeros are left out."""
    total = None
    for r in range(mat.shape[0]):
        if not mat[r].any():
            continue
        coef = tirx.const(0.0, "float32")
        for c in np.flatnonzero(mat[r]):
            coef = tirx.Select(j == int(c), tirx.const(float(mat[r, c]), "float32"), coef)
        total = coef * term(r) if total is None else total + coef * term(r)
    return total


def tiles(size: int, m: int) -> int:
    return (size + m - 1) // m


def gemm_tiles(p: int, k: int, lanes: int = 16) -> tuple[int, int]:
    """(pt, kt): the batched matmul's register tile, pt tiles (rows of V) x kt output channels.

    kt is two vectors when K allows; pt (4..8) is the one that pads P least (ties: the larger). The input
    transform pads P to a multiple of pt (``padded_tiles``), so every register tile is full."""
    kt = 2 * lanes if k % (2 * lanes) == 0 else lanes if k % lanes == 0 else k
    pt = min(range(8, 3, -1), key=lambda t: -(-p // t) * t) if p > 4 else p
    return pt, kt


def padded_tiles(p: int, k: int, lanes: int = 16) -> int:
    pt, _ = gemm_tiles(p, k, lanes)
    return -(-p // pt) * pt


def pack_weight(u: np.ndarray, kt: int) -> np.ndarray:
    """U[a*a, C, K] -> [a*a, K/kt, C, kt]: the kt output channels a register tile needs are contiguous."""
    aa, c, k = u.shape
    return np.ascontiguousarray(u.reshape(aa, c, k // kt, kt).transpose(0, 2, 1, 3))


def batched_gemm(v: te.Tensor, u: te.Tensor) -> te.Tensor:
    """M[b, p, k] = sum_c V[b, p, c] U[b, k // kt, c, k % kt], with U packed by ``pack_weight``."""
    aa, p, c = (int(d) for d in v.shape)
    _, kc, _, kt = (int(d) for d in u.shape)
    rc = te.reduce_axis((0, c), name="rc")
    return te.compute((aa, p, kc * kt), lambda b, i, k: te.sum(v[b, i, rc] * u[b, k // kt, rc, k % kt], axis=rc),
                      name="winograd_gemm")


def input_transform(data: te.Tensor, m: int, padding: tuple[int, int, int, int], p_pad: int = 0, *,
                    branch_free: bool = False) -> te.Tensor:
    """NCHW[x]c data -> V[a*a, P, C] with P = N * tiles(OH) * tiles(OW), for a 3x3 stride-1 conv.

    With ``p_pad`` > P, V gets p_pad tiles; the extra ones are zero. A pixel outside the image reads as zero:
    by default a branch around its load (``if_then_else``); with ``branch_free``, a load at the clamped
    position and a select. The one-kernel form (``fused``) ran 4-8% faster branch-free (VGG 64x64 @224x224
    14.5 -> 13.8 ms, ResNet 64x64 @56x56 1.64 -> 1.52 ms); the three-kernel input transform, which is bound
    by its stores, ran 10-14% slower, so it keeps the branches."""
    n, c_chunks, h, w, cb = (int(d) for d in data.shape)
    top, left, bottom, right = padding
    out_h, out_w = h + top + bottom - 2, w + left + right - 2
    th, tw = tiles(out_h, m), tiles(out_w, m)
    a = m + 2
    _, b_mat, _ = matrices(m)
    p_real = n * th * tw
    p_pad = max(p_pad, p_real)

    def pixel(y, x, p, c):  # input pixel of tile p at tile offset (y, x), zero outside the image
        img, t = p // (th * tw), p % (th * tw)
        row, col = t // tw * m + y - top, t % tw * m + x - left
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        if p_pad > p_real:
            inside = tirx.all(inside, p < p_real)
        zero = tirx.const(0.0, data.dtype)
        if branch_free:
            img = tirx.min(img, n - 1)  # a padded tile (p >= P) is past the last image
            clamped = data[img, c // cb, tirx.max(tirx.min(row, h - 1), 0), tirx.max(tirx.min(col, w - 1), 0), c % cb]
            return tirx.Select(inside, clamped, zero)
        return tirx.if_then_else(inside, data[img, c // cb, row, col, c % cb], zero)

    shape = (a, a, p_pad, c_chunks * cb)
    patch = te.compute(shape, pixel, name="winograd_input_patch")
    rows = te.compute(shape, lambda e, x, p, c: _dot(b_mat, e, lambda r: patch[r, x, p, c]), name="winograd_input_rows")
    return te.compute((a * a, p_pad, c_chunks * cb),
                      lambda b, p, c: _dot(b_mat, b % a, lambda r: rows[b // a, r, p, c]), name="winograd_input")


def output_transform(mm: te.Tensor, m: int, out_shape: tuple[int, int, int, int, int]) -> te.Tensor:
    """M[a*a, P, K] -> NCHW[x]c output of shape ``out_shape`` (tiles past the edge, and padded tiles of M, are
    dropped)."""
    n, k_chunks, out_h, out_w, kb = out_shape
    th, tw = tiles(out_h, m), tiles(out_w, m)
    a = m + 2
    a_mat, _, _ = matrices(m)
    cols = te.compute((a, m, n * th * tw, k_chunks * kb),
                      lambda e, x, p, k: _dot(a_mat, x, lambda r: mm[e * a + r, p, k]), name="winograd_output_cols")

    def value(img, kc, y, x, ko):
        p = img * th * tw + y // m * tw + x // m
        return _dot(a_mat, y % m, lambda r: cols[r, x % m, p, kc * kb + ko])

    return te.compute((n, k_chunks, out_h, out_w, kb), value, name="winograd_output")


def row_tile(tiles_per_row: int) -> int | None:
    """The matmul's register tile height for ``fused``, which multiplies one row of tiles at a time: the
    largest divisor of the row in 4..8, or None (then the layer takes the three-kernel form)."""
    return next((t for t in range(8, 3, -1) if tiles_per_row % t == 0), None)


def fused(data: te.Tensor, u: te.Tensor, m: int, padding: tuple[int, int, int, int],
          out_shape: tuple[int, int, int, int, int]) -> te.Tensor:
    """The three steps as one kernel (V and M are intermediates): the llvm rule computes them one row of tiles
    at a time, so V and M stay in cache instead of going to memory and back. For layers whose U is small
    (it is read once per row of tiles)."""
    v = input_transform(data, m, padding, branch_free=True)
    return output_transform(batched_gemm(v, u), m, out_shape)
