"""legalize: Relax ops -> call_tir of TensorIR PrimFuncs, TVM's legalization plus dlc's own.

dlc's own cover what TVM 0.27 cannot legalize:

    R.nn.conv2d(data_layout="NCHW{ib}c", kernel_layout="OIHW{ib}i{ob}o")  -> dlc.ops.conv2d_nchwc (any groups)
    R.nn.conv2d(groups=C, data_layout="NCHW{b}c", kernel_layout="OIHW1i{b}o") -> dlc.ops.depthwise_conv2d_nchwc

(TVM's conv2d legalization only takes 4-letter layouts.) Everything else goes to TVM's ``LegalizeOps``.
"""

from __future__ import annotations

import re

import tvm
from tvm import relax

from ..ops import conv2d_nchwc, depthwise_conv2d_nchwc
from . import register_pass

_BLOCKED = re.compile(r"^NCHW(\d+)c$")


def _conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    attrs = call.attrs
    data_m = _BLOCKED.match(attrs.data_layout)
    if not data_m or not _BLOCKED.match(attrs.out_layout or attrs.data_layout):
        # 4-letter layouts: TVM's own legalization
        return tvm.relax.transform.legalize_ops.nn._nn_conv2d(bb, call)
    out_dtype = attrs.out_dtype if attrs.out_dtype else call.args[0].ty.dtype
    common = dict(strides=[int(s) for s in attrs.strides], padding=[int(p) for p in attrs.padding],
                  dilation=[int(d) for d in attrs.dilation], out_dtype=str(out_dtype))
    data_shape = call.args[0].ty.shape
    channels = int(data_shape[1]) * int(data_shape[4])
    if int(attrs.groups) == channels and int(call.args[1].ty.shape[1]) == 1:
        return bb.call_te(depthwise_conv2d_nchwc, call.args[0], call.args[1],
                          primfunc_name_hint="depthwise_conv2d_nchwc", **common)
    return bb.call_te(conv2d_nchwc, call.args[0], call.args[1], primfunc_name_hint="conv2d_nchwc", **common)


LEGALIZATIONS = {"relax.nn.conv2d": _conv2d}


@register_pass("legalize", "Relax ops -> call_tir of TensorIR PrimFuncs (TVM's, plus dlc's blocked-layout convs)",
               required=True)
def legalize(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    return relax.transform.LegalizeOps(customize_legalize_map=LEGALIZATIONS)


@register_pass("fusable-layout-transforms",
               "let legalized layout_transform kernels fuse as conv/matmul epilogues (TVM marks them opaque)")
def fusable_layout_transforms(target: tvm.target.Target, options=None) -> tvm.transform.Pass:
    # A layout transform without padding moves each element once. TVM's op-pattern analysis cannot see that
    # through its div/mod indexing and calls it opaque; even "injective" would not fuse after a conv (FuseOps
    # only appends elementwise ops to a conv). Marked elementwise, the transform back to NCHW and the
    # ops after it become the conv's epilogue, computed from the conv's registers (the schedule rules handle
    # any injective epilogue).
    #
    # Except where the NCHW result is only re-viewed with more dimensions (reshapes splitting out channel
    # groups, for per-group slices and channel shuffles): that epilogue stores each channel vector as 16
    # scalars in 16 planes (ShuffleNet's grouped convs: as many cycles as their FMAs), only for the next
    # kernel to gather the channels again. Marked injective, the transform stays out of the conv, which
    # then writes whole vectors, and heads the injective kernel that does the gathering anyway.
    @tvm.transform.module_pass(opt_level=0, name="FusableLayoutTransforms")
    def run(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        regrouped = _feed_only_regroupings(mod)
        for gv, func in list(mod.functions_items()):
            if isinstance(func, tvm.tirx.PrimFunc) and gv.name_hint.startswith("te_layout_transform") \
                    and "if_then_else" not in func.script():
                mod[gv] = func.with_attr("op_pattern", 2 if gv in regrouped else 0)  # kInjective / kElemWise
        return mod

    return run


def _is_regrouping(func) -> bool:
    """An injective PrimFunc (by TVM's analysis) whose output has more dimensions than its first input (a
    reshape splitting an axis, e.g. channels into groups; not a flatten)."""
    if not isinstance(func, tvm.tirx.PrimFunc) or func.attrs is None or "op_pattern" not in func.attrs:
        return False
    if int(func.attrs["op_pattern"]) != 2 or len(func.params) < 2:
        return False
    return len(func.params[-1].shape) > len(func.params[0].shape)  # params are buffers in TVM 0.27


def _feed_only_regroupings(mod: tvm.IRModule) -> set[tvm.ir.GlobalVar]:
    """The PrimFuncs each of whose call_tir results is read by regroupings (``_is_regrouping``) only."""
    call_tir = tvm.ir.Op.get("relax.call_tir")
    producer, users = {}, {}
    for _, func in mod.functions_items():
        if not isinstance(func, relax.Function):
            continue
        for block in func.body.blocks:
            for binding in block.bindings:
                value = binding.value
                is_call_tir = isinstance(value, relax.Call) and value.op.same_as(call_tir)
                if is_call_tir:
                    producer[binding.var] = value.args[0]
                for var in relax.analysis.free_vars(value):
                    users.setdefault(var, []).append(value.args[0] if is_call_tir else None)
        for var in relax.analysis.free_vars(func.body.body):  # the function's result
            users.setdefault(var, []).append(None)
    verdict: dict = {}
    for var, gv in producer.items():
        ok = bool(users.get(var)) and all(u is not None and _is_regrouping(mod[u]) for u in users[var])
        verdict[gv] = verdict.get(gv, True) and ok
    return {gv for gv, ok in verdict.items() if ok}
