"""Output comparison exactly as onnx's backend test runner does it (``Runner.assert_similar_outputs``): same
count, same shape, same dtype, then ``np.testing.assert_allclose(out, ref, rtol, atol)`` (NaN equals NaN;
bfloat16 compared in float32 with rtol >= 2**-6; strings compared exactly; sequences element by element).

``mismatch`` returns None when the outputs agree, else one line saying where and how they differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _one(out, ref, rtol: float, atol: float, where: str) -> str | None:
    if isinstance(ref, (list, tuple)):
        if not isinstance(out, (list, tuple)):
            return f"{where}: expected a sequence, got {type(out).__name__}"
        if len(out) != len(ref):
            return f"{where}: sequence of {len(out)}, expected {len(ref)}"
        for j, (o, r) in enumerate(zip(out, ref)):
            msg = _one(o, r, rtol, atol, f"{where}[{j}]")
            if msg:
                return msg
        return None
    if ref is None:
        return None if out is None else f"{where}: expected an empty optional"
    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape != ref.shape:
        return f"{where}: shape {out.shape}, expected {ref.shape}"
    if ref.dtype == object:
        return None if np.array_equal(out, ref) else f"{where}: strings differ"
    if out.dtype != ref.dtype:
        return f"{where}: dtype {out.dtype}, expected {ref.dtype}"
    if out.dtype.name == "bfloat16":
        rtol = max(rtol, 2**-6)
        out, ref = out.astype(np.float32), ref.astype(np.float32)
    if out.dtype.kind not in "biufc":  # float8/float4/int4 (ml_dtypes): compare their float32 values
        out, ref = out.astype(np.float32), ref.astype(np.float32)
    try:
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)
    except AssertionError:
        o64, r64 = out.astype(np.float64), ref.astype(np.float64)
        bad = ~np.isclose(o64, r64, rtol=rtol, atol=atol, equal_nan=True)
        err = np.abs(o64 - r64)
        err = np.where(np.isnan(err), np.inf, err)
        return (f"{where}: {int(bad.sum())}/{bad.size} elements differ, max abs err "
                f"{float(np.max(err[bad])):.3g} (rtol={rtol:g}, atol={atol:g})")
    return None


def mismatch(outputs: Sequence, expected: Sequence, rtol: float, atol: float) -> str | None:
    if len(outputs) != len(expected):
        return f"{len(outputs)} outputs, expected {len(expected)}"
    for i, (o, r) in enumerate(zip(outputs, expected)):
        msg = _one(o, r, rtol, atol, f"output {i}")
        if msg:
            return msg
    return None
