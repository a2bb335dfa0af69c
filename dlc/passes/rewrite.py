"""``rewrite_call`` that leaves a function alone when its pattern matches nothing.

TVM's ``relax.dpl.rewrite_call`` rebuilds the whole function even then, and the rebuild drops ``match_cast``
bindings: the importer's casts that give symbolic shapes a common name (a ``concat`` of operands whose dims
Relax cannot prove equal) go, the op's shape becomes unknown, and legalization can no longer lower it.
"""

from __future__ import annotations

from tvm import relax
from tvm.relax.dpl import DFPattern
from tvm.relax.dpl import rewrite_call as _tvm_rewrite_call


def matches_anywhere(pattern: DFPattern, func: relax.Function) -> bool:
    """Whether ``rewrite_call`` would find a match: the pattern may look through bound variables, as it does."""
    var2val = relax.analysis.get_var2val(func)
    found = []
    relax.analysis.post_order_visit(func, lambda e: found or (pattern.match(e, var2val) and found.append(e)))
    return bool(found)


def rewrite_call(pattern: DFPattern, rewriter, func: relax.Function) -> relax.Function:
    return _tvm_rewrite_call(pattern, rewriter, func) if matches_anywhere(pattern, func) else func
