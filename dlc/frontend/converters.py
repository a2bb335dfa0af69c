"""dlc's converter registry: TVM's ONNX converters, plus dlc's own where TVM lacks one or gets it wrong.

A converter is a class in TVM's ``OnnxOpConverter`` style: classmethods ``_impl_v<N>(bb, inputs, attr,
params)`` returning a Relax expression; the importer picks the newest ``_impl_v<N>`` with N <= the model's
opset. Register dlc's own with ``@register_converter("OpType")``; it takes precedence over TVM's.
"""

from __future__ import annotations

import functools

from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

# Ops the importer handles itself rather than through a converter class.
_BUILTIN_OPS = frozenset({"If", "Constant"})

_DLC_CONVERTERS: dict[str, type] = {}


def register_converter(op_type: str):
    """Class decorator: make ``cls`` the converter for ``op_type`` (overrides TVM's)."""

    def wrap(cls: type) -> type:
        _DLC_CONVERTERS[op_type] = cls
        convert_map.cache_clear()
        return cls

    return wrap


@functools.cache
def convert_map() -> dict[str, type]:
    """op type -> converter class, dlc's own over TVM's."""
    return {**_get_convert_map(), **_DLC_CONVERTERS}


def is_supported(op_type: str) -> bool:
    return op_type in _BUILTIN_OPS or op_type in convert_map()
