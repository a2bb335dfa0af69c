"""Tiny workloads and records for the tuning tests, built without tuning anything."""

from __future__ import annotations

import tvm
from tvm import s_tir, te
from tvm.s_tir import meta_schedule as ms

from dlc.target import host_target
from dlc.tune.database import StoredRecord, TuningDatabase
from dlc.tune.tasks import workload_module


def tiny_workload(n: int) -> tvm.IRModule:
    """B = A + 1 over n floats: a workload that is cheap to make, hash and schedule."""
    a = te.placeholder((n,), name="A")
    b = te.compute((n,), lambda i: a[i] + 1.0, name="B")
    return workload_module(te.create_prim_func([a, b]))


def commit_tiny(db: TuningDatabase, n: int, run_secs: list[float], target: tvm.target.Target | None = None,
                factor: int = 1) -> StoredRecord:
    """Commit one record (a split of the loop by ``factor``) for ``tiny_workload(n)``."""
    target = target or host_target()
    mod = tiny_workload(n)
    entry = db.commit_workload(mod)
    sch = s_tir.Schedule(mod)
    (loop,) = sch.get_loops(sch.get_sblock("B"))
    sch.split(loop, [None, factor])
    rec = ms.database.TuningRecord(sch.trace, entry.workload, run_secs, target,
                                   ms.arg_info.ArgInfo.from_prim_func(mod["main"]))
    trace, secs, tgt, args = rec.as_json()
    return db.commit(entry, trace, secs, tgt, args)
