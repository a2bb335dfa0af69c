"""dlc's converter registry: dlc's own converters (``dlc/frontend/ops``) over TVM's, looked up by domain and op.

A converter is a ``Converter`` (TVM's ``OnnxOpConverter``) subclass: classmethods ``_impl_v<N>(bb, inputs, attr,
params)`` returning a Relax expression (or a tuple/list of them for several outputs); the importer picks the
newest ``_impl_v<N>`` with N <= the opset the model imports for the op's domain. Register dlc's own with
``@register_converter("OpType")`` (default domain) or ``@register_converter("OpType", domain="com.microsoft")``;
it takes precedence over TVM's.

TVM keys its converters by op type alone and mixes Microsoft contrib ops in: its ``Attention`` is
``com.microsoft.Attention``. Here TVM's contrib converters answer only for ``com.microsoft``, so ONNX's own
``Attention`` goes to dlc's converter or to ONNX's function body.

An op with no converter but an ONNX function body (``Swish``, ``NegativeLogLikelihoodLoss``, ...) is still
supported: the importer inlines the body (``functions.py``).
"""

from __future__ import annotations

import functools

import onnx
from tvm.relax.frontend.onnx.onnx_frontend import OnnxOpConverter as Converter
from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

__all__ = ["Converter", "convert_map", "find_converter", "is_supported", "register_converter"]

DEFAULT = ""  # the default ONNX domain ("" and "ai.onnx" are the same)
MICROSOFT = "com.microsoft"

# TVM converters that implement Microsoft contrib ops, not the ONNX ops of the same name (if any).
_TVM_CONTRIB = frozenset({"Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "FastGelu", "BiasGelu",
                          "MatMulInteger16", "AllClassNMS"})

_DLC_CONVERTERS: dict[tuple[str, str], type] = {}


def normalize_domain(domain: str) -> str:
    return DEFAULT if domain in ("", "ai.onnx") else domain


def register_converter(op_type: str, domain: str = DEFAULT):
    """Class decorator: make ``cls`` the converter for ``op_type`` in ``domain`` (overrides TVM's)."""

    def wrap(cls: type) -> type:
        _DLC_CONVERTERS[(normalize_domain(domain), op_type)] = cls
        convert_map.cache_clear()
        return cls

    return wrap


@functools.cache
def convert_map() -> dict[tuple[str, str], type]:
    """(domain, op type) -> converter class, dlc's own over TVM's."""
    from . import ops  # noqa: F401  (registers dlc's converters)

    out: dict[tuple[str, str], type] = {}
    for op, cls in _get_convert_map().items():
        out[(MICROSOFT if op in _TVM_CONTRIB else DEFAULT, op)] = cls
    out.update(_DLC_CONVERTERS)
    return out


def find_converter(op_type: str, domain: str = DEFAULT) -> type | None:
    return convert_map().get((normalize_domain(domain), op_type))


def has_function_body(op_type: str, domain: str, opset: int) -> bool:
    """ONNX defines this op (at this opset) as a function of other ops, which the importer can inline."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, normalize_domain(domain))
    except onnx.defs.SchemaError:
        return False
    return bool(schema.has_function or schema.has_context_dependent_function)


def is_supported(op_type: str, domain: str = DEFAULT, opset: int | None = None) -> bool:
    if find_converter(op_type, domain) is not None:
        return True
    return opset is not None and has_function_body(op_type, domain, opset)
