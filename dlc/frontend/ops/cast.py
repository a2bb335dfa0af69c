"""Cast and CastLike, including the types TVM cannot hold: float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0),
float4 (e2m1), int4/uint4, int2/uint2.

Those tensors live in a wider *carrier* dtype (``dlc.signature.CARRIER_DTYPES``: float32 for the narrow floats,
int8/uint8 for the narrow ints) that holds every value exactly, so a cast *to* a narrow type is a rounding to
that type's grid inside the carrier, written here with the same rules as onnx's reference (ml_dtypes):
round-to-nearest-even, ``saturate`` clamping to the largest finite value, overflow to inf or NaN otherwise;
narrow ints truncate and wrap. A cast *from* a narrow type is a plain cast of the carrier.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax, te, tirx
from tvm.relax import op as R

from ...signature import carrier_dtype
from ..converters import Converter, register_converter
from ..graph import Value
from ..values import np_dtype_name
from .common import dtype, emit_te, logical_dtype


@dataclass(frozen=True)
class FloatFormat:
    mbits: int
    bias: int
    max: float
    has_inf: bool
    nan_to: float | None = None  # what NaN becomes (formats without NaN); None keeps NaN


FLOAT_FORMATS = {
    "float8_e4m3fn": FloatFormat(3, 7, 448.0, False),
    "float8_e4m3fnuz": FloatFormat(3, 8, 240.0, False),
    "float8_e5m2": FloatFormat(2, 15, 57344.0, True),
    "float8_e5m2fnuz": FloatFormat(2, 16, 57344.0, False),
    "float4_e2m1fn": FloatFormat(1, 1, 6.0, False, nan_to=-0.0),  # no NaN: ml_dtypes gives -0
}
INT_BITS = {"int4": (4, True), "uint4": (4, False), "int2": (2, True), "uint2": (2, False)}


def _pow2(e):
    """2**e as float32 for an int32 TIR exponent in the normal range."""
    return tirx.reinterpret("float32", tirx.Cast("uint32", e + 127) << tirx.const(23, "uint32"))


def round_to_float(x, fmt: FloatFormat, saturate: bool):
    """A float32 value rounded to a narrow float format's grid (result still float32)."""
    a = tirx.abs(x)
    bits = tirx.reinterpret("uint32", a)
    e = tirx.Cast("int32", (bits >> tirx.const(23, "uint32")) & tirx.const(0xFF, "uint32")) - 127
    e = tirx.max(e, tirx.const(1 - fmt.bias, "int32"))
    q = _pow2(e - fmt.mbits)
    r = tirx.nearbyint(a / q) * q
    big = tirx.const(fmt.max, "float32")
    over_value = big if saturate else tirx.const(float("inf") if fmt.has_inf else float("nan"), "float32")
    if fmt.nan_to is not None and not fmt.has_inf:  # float4: saturates always
        over_value = big
    r = tirx.Select(tirx.any(r > big, tirx.isinf(a)), over_value, r)
    r = tirx.Select(x < tirx.const(0.0, "float32"), -r, r)
    nan = tirx.const(float("nan") if fmt.nan_to is None else fmt.nan_to, "float32")
    return tirx.Select(tirx.isnan(x), nan, r)


def round_to_e8m0(x, saturate: bool, mode: str):
    """float32 -> float8_e8m0fnu (a power of two, sign dropped), as onnx.numpy_helper.to_float8e8m0."""
    bits = tirx.reinterpret("uint32", x)
    exp = tirx.Cast("int32", (bits >> tirx.const(23, "uint32")) & tirx.const(0xFF, "uint32"))
    frac = bits & tirx.const(0x7FFFFF, "uint32")
    if mode == "up":
        up = frac > tirx.const(0, "uint32")
    elif mode == "nearest":
        g = (bits & tirx.const(0x400000, "uint32")) > tirx.const(0, "uint32")
        rr = (bits & tirx.const(0x200000, "uint32")) > tirx.const(0, "uint32")
        s = (bits & tirx.const(0x1FFFFF, "uint32")) > tirx.const(0, "uint32")
        up = tirx.all(g, tirx.any(rr, s, exp > 0))
    else:
        up = tirx.const(False, "bool")
    if saturate:
        up = tirx.all(up, exp != 0xFE)
    out = exp + tirx.Select(up, tirx.const(1, "int32"), tirx.const(0, "int32"))
    # 2**(out - 127): out == 0 is the float32 denormal 2**-127, out >= 255 is NaN.
    val = tirx.Select(out == 0, tirx.reinterpret("float32", tirx.const(1 << 22, "uint32")),
                      tirx.reinterpret("float32", tirx.Cast("uint32", tirx.min(out, 254)) << tirx.const(23, "uint32")))
    return tirx.Select(tirx.any(exp == 0xFF, out >= 255), tirx.const(float("nan"), "float32"), val)


def wrap_int(v, bits: int, signed: bool):
    """An int32 value wrapped to a narrow int's range (two's complement), as ml_dtypes casts do."""
    m = tirx.const(1 << bits, "int32")
    if signed:
        h = tirx.const(1 << (bits - 1), "int32")
        return tirx.floormod(v + h, m) - h
    return tirx.floormod(v, m)


def cast(bb: relax.BlockBuilder, x: relax.Expr, src: str, to: str, saturate: bool = True,
         round_mode: str = "up") -> Value:
    """Cast ``x`` (logical dtype ``src``) to logical dtype ``to``; the result as a Value with its ONNX dtype."""
    target = carrier_dtype(to)
    if to == src:
        return Value(x, None, to)
    if to in FLOAT_FORMATS or to == "float8_e8m0fnu":
        f = x if dtype(x) == "float32" else bb.emit(R.astype(x, "float32"))

        def kernel(t):
            if to == "float8_e8m0fnu":
                return te.compute(t.shape, lambda *i: round_to_e8m0(t(*i), saturate, round_mode), name="to_e8m0")
            return te.compute(t.shape, lambda *i: round_to_float(t(*i), FLOAT_FORMATS[to], saturate),
                              name=f"to_{to}")

        return Value(emit_te(bb, kernel, f, name=f"cast_to_{to}"), None, to)
    if to in INT_BITS:
        bits, signed = INT_BITS[to]
        v = x if dtype(x) == "int32" else bb.emit(R.astype(x, "int32"))  # floats truncate toward zero

        def kernel(t):
            return te.compute(t.shape, lambda *i: tirx.Cast(target, wrap_int(t(*i), bits, signed)),
                              name=f"to_{to}")

        return Value(emit_te(bb, kernel, v, name=f"cast_to_{to}"), None, to)
    return Value(bb.emit(R.astype(x, target)) if dtype(x) != target else x, None, to)


def _unsupported(to: str) -> None:
    if to in ("object", "str") or to.startswith(("<U", "|S")):
        raise ValueError("string tensors are not supported")


@register_converter("Cast")
class Cast(Converter):
    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        to_attr = attr["to"]
        to = np_dtype_name(to_attr) if isinstance(to_attr, int) else str(to_attr.decode() if isinstance(
            to_attr, bytes) else to_attr)
        _unsupported(to)
        mode = attr.get("round_mode", b"up")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        return cast(bb, inputs[0], logical_dtype(inputs[0]), to, bool(attr.get("saturate", 1)), mode)


@register_converter("CastLike")
class CastLike(Converter):
    @classmethod
    def _impl_v15(cls, bb, inputs, attr, params):
        to = logical_dtype(inputs[1])
        _unsupported(to)
        mode = attr.get("round_mode", b"up")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        return cast(bb, inputs[0], logical_dtype(inputs[0]), to, bool(attr.get("saturate", 1)), mode)
