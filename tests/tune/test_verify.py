"""``dlc db verify``: a record that loses to the untuned schedule inside the model stops applying."""

from __future__ import annotations

import onnx
from onnx import helper
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms

import dlc
from dlc.target import host_target, target_key
from dlc.tune import dbtools
from dlc.tune.database import TuningDatabase, paired_verdict
from dlc.tune.tasks import extract_tasks
from dlc.tune.verify import verify
from tests.helpers import make_model, rand


def test_a_record_slower_in_the_model_stops_applying(tmp_path):
    model = tmp_path / "mm.onnx"
    onnx.save(make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [64, 96])], [("y", [64, 128])],
                         [("w", rand(96, 128))]), model)
    target = host_target()
    (task,) = extract_tasks(str(model), dlc.CompileOptions())[1]
    db = TuningDatabase(tmp_path / "db" / target_key(target), target_key(target))
    entry = db.commit_workload(task.mod)
    # A record of the kernel left unscheduled (no tiles, no vectors: many times slower than the hand
    # matmul rule), claiming 1 ns: by its own timing it beats the rule, so a compile applies it ...
    unscheduled = s_tir.Schedule(task.mod)
    rec = ms.database.TuningRecord(unscheduled.trace, entry.workload, [1e-9], target,
                                   ms.arg_info.ArgInfo.from_prim_func(task.func))
    db.commit(entry, *rec.as_json())
    options = dlc.CompileOptions(tuning_dbs=(str(tmp_path / "db"),))
    assert [k["origin"] for k in dlc.compile(str(model), options=options).kernels] == ["tuned"]

    # ... until it is timed beside the rule's schedule in the model.
    (row,) = verify(str(model), options, rounds=3, threads=1)
    assert row["kernel"] == task.name and row["hand_rule"] == "hand:matmul"
    assert not row["wins"] and row["tuned_us"] > 2 * row["hand_us"]
    again = TuningDatabase(db.folder, db.key)  # the verdict is on disk, as the tuner writes its own
    stored = again.find(task.mod)
    (paired,) = [b for b in again.baselines_of(stored) if b.versus]
    assert len(paired.run_secs) == len(paired.versus["run_secs"]) == 3
    assert paired_verdict(again, stored, again.best(stored)) is False
    assert [k["origin"] for k in dlc.compile(str(model), options=options).kernels] == ["hand:matmul"]
    for shipped in dbtools.export(tmp_path / "db", tmp_path / "ship", faster_only=True):
        assert not TuningDatabase(shipped, db.key).records  # and it does not ship
