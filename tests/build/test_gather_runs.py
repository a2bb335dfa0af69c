"""gather-runs (dlc's TIR lowering pass): a channel shuffle's gather load and scatter store become whole-run
vector accesses plus shuffles, in the dlc-llvm pipeline; the numbers do not change."""

import numpy as np
import pytest
import tvm
from tvm import s_tir, te

from dlc.build import tir_pipeline
from dlc.target import resolve_target

GROUPS, PER_GROUP, LANES = 4, 32, 8  # ShuffleNet's 4 groups; 8-lane output blocks -> runs of 2 per group


def _vectorized(func, block_name):
    sch = s_tir.Schedule(func)
    sch.vectorize(sch.get_loops(sch.get_sblock(block_name))[-1])
    return sch.mod


def shuffle_gather():
    """y[b, i] = x[c % G, c // G] with c = b*8 + i: each output vector reads 2 adjacent floats of each group."""
    x = te.placeholder((GROUPS, PER_GROUP), name="x")
    y = te.compute((GROUPS * PER_GROUP // LANES, LANES),
                   lambda b, i: x[(b * LANES + i) % GROUPS, (b * LANES + i) // GROUPS], name="y")
    return (_vectorized(te.create_prim_func([x, y]), "y"), lambda a: a.T.reshape(-1, LANES),
            (GROUPS, PER_GROUP), (GROUPS * PER_GROUP // LANES, LANES))


def shuffle_scatter():
    """The inverse: y[c % G, c // G] = x[b, i] -- each input vector is stored as 2 adjacent floats per group."""
    x = te.placeholder((GROUPS * PER_GROUP // LANES, LANES), name="x")
    y = te.compute((GROUPS, PER_GROUP), lambda g, j: x[(j * GROUPS + g) // LANES, (j * GROUPS + g) % LANES], name="y")
    sch = s_tir.Schedule(te.create_prim_func([x, y]))
    # iterate in x's order so that the *store* is the irregular access
    blk = sch.get_sblock("y")
    sch.transform_block_layout(blk, lambda g, j: ((j * GROUPS + g) // LANES, (j * GROUPS + g) % LANES))
    sch.vectorize(sch.get_loops(blk)[-1])
    return (sch.mod, lambda a: a.reshape(PER_GROUP, GROUPS).T, (GROUPS * PER_GROUP // LANES, LANES),
            (GROUPS, PER_GROUP))


def _build(mod, pipeline):
    seen = []

    @tvm.instrument.pass_instrument
    class AfterGatherRuns:
        def run_after_pass(self, m, info):
            if info.name == "dlc.GatherRuns":
                seen.append(m.script())

    with tvm.transform.PassContext(instruments=[AfterGatherRuns()]):
        lib = tvm.compile(mod, target=resolve_target("llvm"), tir_pipeline=pipeline)
    return lib, "\n".join(seen)


@pytest.mark.parametrize("make", [shuffle_gather, shuffle_scatter], ids=["gather", "scatter"])
def test_runs_become_vector_accesses_and_numbers_hold(make):
    mod, reference, x_shape, y_shape = make()
    target = resolve_target("llvm")
    assert tir_pipeline(target) == "dlc-llvm"
    ours, lowered = _build(mod, tir_pipeline(target))
    stock, _ = _build(mod, "default")

    # structure: an 8-lane vector is 4 runs of 2 elements: 4 two-float loads joined by one shuffle, or one
    # value split by shuffles into 4 two-float stores
    shuffles = [line for line in lowered.splitlines() if "T.Shuffle(" in line]
    if make is shuffle_gather:
        assert len(shuffles) == 1 and shuffles[0].count(", 1, 2)]") == 4
    else:
        assert len(shuffles) == 4 and all(" + 2] = T.Shuffle([scattered]" in line for line in shuffles)

    a = np.random.default_rng(0).standard_normal(x_shape).astype("float32")
    outs = []
    for lib in (ours, stock):
        y = tvm.runtime.tensor(np.zeros(y_shape, "float32"))
        lib["main"](tvm.runtime.tensor(a), y)
        outs.append(y.numpy())
    np.testing.assert_array_equal(outs[0], reference(a))  # a permutation: exact
    np.testing.assert_array_equal(outs[1], reference(a))


def test_cuda_keeps_tvm_pipeline():
    assert tir_pipeline(resolve_target("cuda")) == "default"
