"""power-to-sqrt: ``power(x, c)`` for a constant ``c`` in quarters (0.75, 1.5, -0.5, 2, ...) -> products of
``x``, ``sqrt(x)`` and ``sqrt(sqrt(x))`` (and one divide when ``c < 0``).

LLVM lowers ``pow`` to a scalar libm call (~25 ns per element here) that it cannot vectorize; ``sqrt`` is one
vector instruction. LRN (Inception, AlexNet, ZFNet) raises every activation to ``beta = 0.75``: its ``pow`` was
a fifth of Inception v1's kernel time. Each factor is correctly rounded, so the result is within a few ulp of
``pow``, and the special cases agree (a negative base with a fractional exponent gives NaN either way, 0 gives
0, or inf when ``c < 0``).
"""

from __future__ import annotations

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from . import register_pass
from .rewrite import rewrite_call

MAX_EXPONENT = 4.0  # beyond this, the chain of products loses more precision than pow


def _quarters(exponent: tvm.ir.GenericConst) -> int | None:
    """The exponent in quarters, if it is one scalar (or one-element) constant that is a nonzero multiple of 1/4."""
    value = exponent.value.numpy()
    if value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    c = float(value.reshape(()))
    q = c * 4
    if q != round(q) or q == 0 or abs(c) > MAX_EXPONENT:
        return None
    return int(round(q))


def _expand(x: relax.Expr, quarters: int) -> relax.Expr:
    """x ** (quarters / 4) for quarters > 0, as a product of x, sqrt(x) and sqrt(sqrt(x))."""
    whole, rest = divmod(quarters, 4)
    factors = [x] * whole
    root = relax.op.sqrt(x) if rest else None
    if rest & 2:
        factors.append(root)
    if rest & 1:
        factors.append(relax.op.sqrt(root))
    out = factors[0]
    for f in factors[1:]:
        out = relax.op.multiply(out, f)
    return out


@register_pass("power-to-sqrt", "power(x, c), c a constant in quarters (LRN's 0.75) -> x, sqrt, sqrt-sqrt products")
def power_to_sqrt(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    x, c = wildcard(), is_const()
    pattern = is_op("relax.power")(x, c)

    def rewrite(expr: relax.Call, matched) -> relax.Expr:
        quarters = _quarters(matched[c])
        dtype = str(getattr(expr.ty, "dtype", ""))
        if quarters is None or dtype not in ("float16", "float32", "float64") or not _same_shape(matched[x], expr):
            return expr  # not a float tensor, or the exponent broadcasts x to a larger shape: leave it
        out = _expand(matched[x], abs(quarters))
        if quarters < 0:
            out = relax.op.divide(relax.const(1.0, dtype), out)
        return out

    @relax.transform.function_pass(opt_level=0, name="PowerToSqrt")
    class PowerToSqrt:
        def transform_function(self, func, mod, ctx):
            return rewrite_call(pattern, rewrite, func)

    return PowerToSqrt()


def _same_shape(a: relax.Expr, b: relax.Expr) -> bool:
    sa, sb = getattr(a.ty, "shape", None), getattr(b.ty, "shape", None)
    return sa is not None and sb is not None and tvm_ffi.structural_equal(sa, sb)
