"""What the importer knows about an ONNX value besides its Relax expression.

``Value.known`` is the value itself when it is known while importing: a numpy array (initializers, Constants,
anything folded from them), or a ``SymArray`` whose elements are TIR expressions in the model's symbolic dims
(``Shape(x)`` of an ``(N, 3, 224, 224)`` tensor is ``[N, 3, 224, 224]``). ``Value.dtype`` is the ONNX type as a
numpy dtype name; for types TVM cannot hold natively (float8, int4, ...) the Relax tensor has a wider *carrier*
dtype (``dlc.signature.CARRIER_DTYPES``) that holds every value exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import tvm
import tvm.sym
from tvm import relax, tirx

from ..signature import carrier_dtype


@dataclass(frozen=True, eq=False)
class SymArray:
    """A small integer array known at import time up to symbolic dims: elements are ints or TIR expressions."""

    values: np.ndarray  # dtype=object
    dtype: str  # the ONNX value's numpy dtype name (int64, int32, bool, ...)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return self.values.ndim

    def tolist(self) -> list:
        return self.values.tolist()


Known = np.ndarray | SymArray


@dataclass(eq=False)
class Value:
    expr: relax.Expr | None = None  # None until needed, for known values that are not yet in the graph
    known: Known | None = None
    dtype: str | None = None  # ONNX element type as a numpy name; None for sequences/optionals

    @property
    def static(self) -> np.ndarray | None:
        return self.known if isinstance(self.known, np.ndarray) else None


def np_dtype_name(elem_type: int) -> str:
    """ONNX TensorProto element type -> numpy dtype name ('float32', 'float8_e4m3fn', 'int4', ...)."""
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def to_carrier(a: np.ndarray) -> np.ndarray:
    """An array as the Relax graph holds it (float8 as float32, int4 as int8, ...)."""
    c = carrier_dtype(a.dtype.name)
    return a.astype(c) if c != a.dtype.name else a


def const(a: np.ndarray) -> relax.Expr:
    a = to_carrier(np.asarray(a))
    if a.dtype == object or a.dtype.kind in "USO":
        raise TypeError("string tensors are not supported")
    return relax.const(a, a.dtype.name)


def simplify(e, analyzer: tvm.sym.Analyzer | None = None):
    """An int for constant TIR expressions, else the simplified expression."""
    if isinstance(e, (int, np.integer)):
        return int(e)
    if isinstance(e, (bool, np.bool_)):
        return bool(e)
    e = (analyzer or tvm.sym.Analyzer()).simplify(e)
    if isinstance(e, tirx.IntImm):
        return bool(e.value) if str(e.ty) == "bool" else int(e.value)
    return e


def sym_or_static(values: np.ndarray, dtype: str) -> Known:
    """Collapse an object array to a numpy array when every element is a plain number."""
    flat = [simplify(v) for v in values.reshape(-1)]
    if all(isinstance(v, (int, bool)) for v in flat):
        return np.array(flat, dtype=dtype).reshape(values.shape)
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return SymArray(out.reshape(values.shape), dtype)
