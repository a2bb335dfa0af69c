"""The hand-written rules as MetaSchedule design spaces: their tile sizes are decisions of the trace
(``dlc.schedule.utils.tunable_split``), the compile takes the heuristic's, and any other decision replays
into a kernel that computes the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from onnx import helper
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms

import dlc
from dlc.schedule.apply import untuned_schedule
from dlc.tune.measure import search_space
from dlc.tune.tasks import extract_tasks
from tests.helpers import conv_model, make_model, rand

SEEDS = range(1, 13)


def _matmul_model():
    return make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [64, 96])], [("y", [64, 128])],
                      [("w", rand(96, 128))])


MODELS = {
    "conv": (lambda: conv_model(c=32, k=64, hw=14), "conv2d_nchwc", "hand:conv2d_nchwc"),
    "depthwise": (lambda: conv_model(c=32, k=32, hw=28, group=32), "depthwise", "hand:depthwise_nchwc"),
    "matmul": (_matmul_model, "matmul", "hand:matmul"),
}


def _decisions(sch: s_tir.Schedule) -> tuple:
    return tuple(tuple(int(x) for x in sch.trace.decisions[i]) for i in sch.trace.insts
                 if i.kind.name == "SamplePerfectTile")


def _run(mod: tvm.IRModule, args: list[np.ndarray]) -> np.ndarray:
    lib = tvm.compile(mod, target=dlc.target.host_target())
    tensors = [tvm.runtime.tensor(a) for a in args]
    lib["main"](*tensors)
    return tensors[-1].numpy()


@pytest.mark.parametrize("kind", MODELS)
def test_rule_is_a_design_space_whose_decisions_keep_the_numbers(kind, tmp_path):
    make, kernel, rule = MODELS[kind]
    path = tmp_path / f"{kind}.onnx"
    import onnx

    onnx.save(make(), path)
    # the direct conv's rule: a 3x3 conv may become Winograd under `auto`, depending on the CPU's rates
    target, tasks = extract_tasks(str(path), dlc.CompileOptions(winograd="off"))
    (task,) = [t for t in tasks if kernel in t.name]
    label, default = untuned_schedule(task.func, target)
    assert label == rule and _decisions(default)  # the compile's schedule carries its tile sizes as decisions

    space = search_space(task.func, target)
    assert isinstance(space, ms.space_generator.ScheduleFn)  # tuning searches the rule, not from scratch
    ctx = ms.TuneContext(mod=task.mod, target=target, space_generator=space, task_name=kind, num_threads=1)
    (design,) = ctx.generate_design_space()
    assert _decisions(design) == _decisions(default)

    # What the evolutionary search does: replay the rule's instructions with fresh decisions, postprocess.
    rng = np.random.default_rng(0)
    args = [rng.standard_normal([int(d) for d in info.shape]).astype(str(info.dtype))
            for info in ms.arg_info.ArgInfo.from_prim_func(task.func)]
    expected = _run(default.mod, [a.copy() for a in args])
    seen = {_decisions(default)}
    for seed in SEEDS:
        sch = s_tir.Schedule(task.mod, seed=seed)
        s_tir.Trace(design.trace.insts, {}).apply_to_schedule(sch, remove_postproc=True)
        assert all(p.apply(sch) for p in ctx.space_generator.postprocs)
        if _decisions(sch) not in seen:
            seen.add(_decisions(sch))
            np.testing.assert_allclose(_run(sch.mod, [a.copy() for a in args]), expected, rtol=1e-4, atol=1e-4)
    assert len(seen) >= 3  # the space has other tile sizes in it


def test_kernels_without_a_tunable_rule_get_metaschedules_space(tmp_path):
    import onnx

    path = tmp_path / "relu.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [4, 64])], [("y", [4, 64])]), path)
    target, (task,) = extract_tasks(str(path), dlc.CompileOptions())
    assert isinstance(search_space(task.func, target), ms.space_generator.PostOrderApply)
