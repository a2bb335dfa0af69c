"""dlc's own ONNX converters, one module per op family; importing this package registers them all.

Each converter is an ``OnnxOpConverter``-style class registered with ``@register_converter``; it overrides TVM's
converter of the same op, or adds one TVM lacks. ``common.py`` holds what converters share: reading values
known at import time, turning run-time shape tensors into symbolic dims, and emitting TOPI kernels.
"""

from . import (
    cast,  # noqa: F401
    common,  # noqa: F401
    control_flow,  # noqa: F401
    elementwise,  # noqa: F401
    indexing,  # noqa: F401
    normalization,  # noqa: F401
    quantized,  # noqa: F401
    recurrent,  # noqa: F401
    reduce,  # noqa: F401
    resize,  # noqa: F401
    shape,  # noqa: F401
    signal,  # noqa: F401
    training,  # noqa: F401
)
