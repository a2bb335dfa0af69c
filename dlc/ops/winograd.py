"""Winograd convolution F(m x m, 3 x 3) in the blocked NCHW[x]c layout, as three steps:

    V[e*a+n, p, c] = (B^T d_p B)[e, n]          input transform, one a x a tile d_p per output tile p
    M[b, p, k]     = sum_c V[b, p, c] U[b, c, k] a batch of a*a matmuls (U: the weights, transformed at compile
                                                 time by ``transform_weight``)
    y_p            = A^T M_p A                  output transform, an m x m block of the output

with ``a = m + 2``: F(4x4, 3x3) (a = 6) does 36 multiplies per 16 outputs and channel pair where a direct conv
does 144, F(2x2, 3x3) (a = 4) 16 per 4 instead of 36 (Lavin & Gray, 2016). The transform matrices are TVM's
Cook-Toom ones (``topi.nn.winograd_util``); the transforms are written as two separable stages each, and the
channel block is innermost everywhere, so every step vectorizes over channels.

Block names (``winograd_input_rows``/``winograd_input``, ``winograd_output_cols``/``winograd_output``) are
what ``schedules/llvm/winograd.py`` matches on; the matmul is an ordinary Relax matmul.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points


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


def _const(mat: np.ndarray, i, j) -> tirx.PrimExpr:
    """mat[i, j] for loop variables i, j: a select chain that folds to a constant once the loops unroll."""
    expr = tirx.const(0.0, "float32")
    for r in range(mat.shape[0]):
        for c in range(mat.shape[1]):
            if mat[r, c] != 0:
                expr = tirx.Select(tirx.all(i == r, j == c), tirx.const(float(mat[r, c]), "float32"), expr)
    return expr


def tiles(size: int, m: int) -> int:
    return (size + m - 1) // m


def input_transform(data: te.Tensor, m: int, padding: tuple[int, int, int, int]) -> te.Tensor:
    """NCHW[x]c data -> V[a*a, P, C] with P = N * tiles(OH) * tiles(OW), for a 3x3 stride-1 conv."""
    n, c_chunks, h, w, cb = (int(d) for d in data.shape)
    top, left, bottom, right = padding
    out_h, out_w = h + top + bottom - 2, w + left + right - 2
    th, tw = tiles(out_h, m), tiles(out_w, m)
    a = m + 2
    _, b_mat, _ = matrices(m)

    def pixel(p, c, y, x):  # input pixel of tile p at tile offset (y, x), zero outside the image
        img, t = p // (th * tw), p % (th * tw)
        row, col = t // tw * m + y - top, t % tw * m + x - left
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, data[img, c // cb, row, col, c % cb], tirx.const(0.0, data.dtype))

    r1 = te.reduce_axis((0, a), name="r1")
    rows = te.compute((a, a, n * th * tw, c_chunks * cb),
                      lambda e, x, p, c: te.sum(_const(b_mat, r1, e) * pixel(p, c, r1, x), axis=r1),
                      name="winograd_input_rows")
    r2 = te.reduce_axis((0, a), name="r2")
    return te.compute((a * a, n * th * tw, c_chunks * cb),
                      lambda b, p, c: te.sum(rows[b // a, r2, p, c] * _const(b_mat, r2, b % a), axis=r2),
                      name="winograd_input")


def output_transform(mm: te.Tensor, m: int, out_shape: tuple[int, int, int, int, int]) -> te.Tensor:
    """M[a*a, P, K] -> NCHW[x]c output of shape ``out_shape`` (tiles past the edge are dropped)."""
    n, k_chunks, out_h, out_w, kb = out_shape
    th, tw = tiles(out_h, m), tiles(out_w, m)
    a = m + 2
    a_mat, _, _ = matrices(m)
    r2 = te.reduce_axis((0, a), name="r2")
    cols = te.compute((a, m, n * th * tw, k_chunks * kb),
                      lambda e, x, p, k: te.sum(mm[e * a + r2, p, k] * _const(a_mat, r2, x), axis=r2),
                      name="winograd_output_cols")
    r1 = te.reduce_axis((0, a), name="r1")

    def value(img, kc, y, x, ko):
        p = img * th * tw + y // m * tw + x // m
        return te.sum(_const(a_mat, r1, y % m) * cols[r1, x % m, p, kc * kb + ko], axis=r1)

    return te.compute((n, k_chunks, out_h, out_w, kb), value, name="winograd_output")
