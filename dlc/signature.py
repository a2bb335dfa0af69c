"""What a model takes and gives: names, shapes (ints, or names for symbolic dims) and dtypes.

Shared by the frontend (which reads it off the ONNX graph), the artifact metadata (which stores it) and
the runtime (which checks feeds against it), so it depends on nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

Dim = int | str  # an int, or the name of a symbolic dimension ("N", "seq")

# ONNX element types TVM cannot hold natively, and the wider dtype the compiled model holds them in instead:
# every value of the narrow type is exactly representable in its carrier. A spec keeps the ONNX dtype; the
# runtime converts at the boundary.
CARRIER_DTYPES = {
    "int4": "int8", "int2": "int8", "uint4": "uint8", "uint2": "uint8",
    "float8_e4m3fn": "float32", "float8_e4m3fnuz": "float32", "float8_e5m2": "float32",
    "float8_e5m2fnuz": "float32", "float8_e8m0fnu": "float32", "float4_e2m1fn": "float32",
}


def carrier_dtype(dtype: str) -> str:
    return CARRIER_DTYPES.get(dtype, dtype)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def shape_str(self) -> str:
        return "(" + ", ".join(str(d) for d in self.shape) + ")"

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d["dtype"])


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> dict:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}

    @classmethod
    def from_json(cls, d: dict) -> Signature:
        return cls(tuple(map(TensorSpec.from_json, d["inputs"])), tuple(map(TensorSpec.from_json, d["outputs"])))
