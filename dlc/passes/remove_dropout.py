"""remove-dropout: ``dropout(x)[0]`` -> ``x``. Inference never drops anything.

TVM imports ONNX Dropout as ``R.nn.dropout``, which returns a (output, mask) tuple; besides costing a copy,
that tuple stops ``ConvertLayout`` (it cannot carry a layout through a tuple-valued op), so SqueezeNet's and
AlexNet's dropouts would cut the blocked layout in two.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_op, is_tuple_get_item, wildcard

from . import register_pass
from .rewrite import rewrite_call


@register_pass("remove-dropout", "dropout(x)[0] -> x (inference)")
def remove_dropout(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    x = wildcard()
    pattern = is_tuple_get_item(is_op("relax.nn.dropout")(x), 0)

    @relax.transform.function_pass(opt_level=0, name="RemoveDropout")
    class RemoveDropout:
        def transform_function(self, func, mod, ctx):
            return rewrite_call(pattern, lambda expr, matched: matched[x], func)

    return RemoveDropout()
