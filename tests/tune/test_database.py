"""The tuning database: TVM's format, target-aware, corrupt lines skipped, concurrent writers, SIGKILL-safe."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time

import pytest
import tvm
from tuning_helpers import commit_tiny, tiny_workload
from tvm.s_tir import meta_schedule as ms

from dlc.target import resolve_target, target_key
from dlc.tune.database import RECORD_FILE, WORKLOAD_FILE, TuningDatabase


def test_records_round_trip_and_tvm_reads_them(db, host_key):
    commit_tiny(db, 4, [3e-6])
    commit_tiny(db, 4, [1e-6, 1.2e-6], factor=2)
    commit_tiny(db, 8, [5e-6])
    again = TuningDatabase(db.folder, host_key)
    assert len(again) == 3 and len(again.workloads) == 2 and not again.problems
    best = again.best(again.find(tiny_workload(4)))
    assert best.run_secs == pytest.approx([1e-6, 1.2e-6])
    # TVM's own JSONDatabase reads the same files (the format is TVM's, not ours).
    tvm_db = ms.database.JSONDatabase(str(db.workload_path), str(db.record_path), allow_missing=False)
    assert len(tvm_db.get_all_tuning_records()) == 3


def test_corrupt_lines_are_skipped_with_a_warning(db, host_key, caplog):
    commit_tiny(db, 4, [3e-6])
    commit_tiny(db, 8, [5e-6])
    lines = db.record_path.read_text().splitlines()
    db.record_path.write_text("\n".join([lines[0], '[0, ["not a record"', "garbage {{{", lines[1]]) + "\n")
    with db.workload_path.open("a") as f:
        f.write('["123", "bm90IGEgbW9kdWxl"]\n')  # parses as JSON, but is no IRModule
    with caplog.at_level(logging.WARNING, logger="dlc.tune"):
        again = TuningDatabase(db.folder, host_key)
    assert len(again) == 2 and len(again.workloads) == 2
    assert len(again.problems) == 3
    assert f"{RECORD_FILE}:2: skipped a corrupt line" in caplog.text
    assert f"{WORKLOAD_FILE}:3: skipped a corrupt line" in caplog.text
    commit_tiny(again, 16, [1e-6])  # and writing on goes on: the new workload gets the right line index
    final = TuningDatabase(db.folder, host_key)
    assert len(final) == 3 and final.best(final.find(tiny_workload(16))) is not None


def test_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line(db, host_key, caplog):
    commit_tiny(db, 4, [3e-6])
    line = db.record_path.read_text()
    with db.record_path.open("a") as f:
        f.write(line[: len(line) // 2])  # a writer killed mid-line
    assert len(TuningDatabase(db.folder, host_key)) == 1
    commit_tiny(db, 4, [2e-6], factor=2)
    with caplog.at_level(logging.WARNING, logger="dlc.tune"):
        again = TuningDatabase(db.folder, host_key)
    assert len(again) == 2 and len(again.problems) == 1 and "skipped a corrupt line" in caplog.text


def test_records_of_other_targets_are_never_applied(tmp_path, host_key):
    # another CPU than this one, whichever this one is
    other = next(t for t in (resolve_target(f"llvm:{cpu}") for cpu in ("znver4", "cascadelake"))
                 if target_key(t) != host_key)
    db = TuningDatabase(tmp_path / host_key, host_key)
    commit_tiny(db, 4, [1e-6], target=other)  # someone copied another machine's records into our folder
    commit_tiny(db, 8, [1e-6])
    again = TuningDatabase(db.folder, host_key)
    assert again.foreign == 1 and len(again) == 1
    assert again.best(again.find(tiny_workload(4))) is None
    assert again.best(again.find(tiny_workload(8))) is not None


def test_stored_hashes_are_not_trusted(db, host_key):
    """Hashes are platform-dependent (apache/tvm#14188): a workload hashed elsewhere must still match here."""
    commit_tiny(db, 4, [1e-6])
    rows = [json.loads(ln) for ln in db.workload_path.read_text().splitlines()]
    db.workload_path.write_text("".join(json.dumps(["42", r[1]]) + "\n" for r in rows))
    again = TuningDatabase(db.folder, host_key)
    assert again.rehashed == 1
    assert again.best(again.find(tiny_workload(4))) is not None


def test_baselines_are_kept_beside_the_records(db, host_key, caplog):
    commit_tiny(db, 4, [3e-6])
    entry = db.find(tiny_workload(4))
    db.commit_baseline(entry, "hand:x", "a" * 64, [5e-6, 7e-6], db_target_json())
    db.commit_baseline(entry, "hand:x", "a" * 64, [4e-6], db_target_json())
    db.commit_baseline(entry, "hand:x", "b" * 64, [1e-6], db_target_json())
    with db.baseline_path.open("a") as f:
        f.write("[0, {broken\n")
    with caplog.at_level(logging.WARNING, logger="dlc.tune"):
        again = TuningDatabase(db.folder, host_key)
    e = again.find(tiny_workload(4))
    assert again.baseline_secs(e, "a" * 64) == pytest.approx(4e-6)  # the fastest of that exact schedule
    assert again.baseline_secs(e, "c" * 64) is None
    assert len(again.records) == 1 and len(again.problems) == 1 and "dlc_baselines.json:4" in caplog.text


def db_target_json() -> dict:
    from dlc.target import host_target, target_json

    return target_json(host_target())


def test_metaschedule_view_commits_to_disk(db, host_key):
    from dlc.tune.database import MetaScheduleDatabase

    view = MetaScheduleDatabase(db)
    mod = tiny_workload(4)
    workload = view.commit_workload(mod)
    assert view.has_workload(mod) and not view.has_workload(tiny_workload(5))
    sch = tvm.s_tir.Schedule(mod)
    view.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, [2e-6], db_target(),
                                                       ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
    assert len(view) == 1 and len(view.get_top_k(workload, 5)) == 1
    assert len(TuningDatabase(db.folder, host_key)) == 1  # on disk already


def db_target():
    from dlc.target import host_target

    return host_target()


# ---- several processes ---------------------------------------------------------------------------------------
def _writer(folder, key, tag: int, count: int, ack_fd: int | None) -> None:
    """In a forked child: commit ``count`` records, each tagged (tag, i, n) in its run_secs, ack each."""
    db = TuningDatabase(folder, key)
    for i in range(count):
        n = i % 4 + 1
        commit_tiny(db, n, [float(tag), float(i), float(n)])
        if ack_fd is not None:
            os.write(ack_fd, f"{tag} {i}\n".encode())


def _fork(fn, *args) -> int:
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            fn(*args)
        except BaseException:
            code = 1
        os._exit(code)
    return pid


def _tagged(db: TuningDatabase) -> dict[tuple[int, int], int]:
    """(tag, i) -> n of the workload the record points to (the shape of its buffer)."""
    out = {}
    for r in db.records:
        tag, i, n = (int(x) for x in r.run_secs)
        out[(tag, i)] = int(r.workload.mod["main"].params[0].ty.shape[0])
        assert out[(tag, i)] == n, "a record points at the wrong workload"
    return out


def test_two_writers_keep_every_record(tmp_path, host_key):
    folder = tmp_path / host_key
    TuningDatabase(folder, host_key)
    pids = [_fork(_writer, folder, host_key, tag, 40, None) for tag in (1, 2)]
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    db = TuningDatabase(folder, host_key)
    tagged = _tagged(db)  # also checks each record's workload index
    assert sorted(tagged) == [(tag, i) for tag in (1, 2) for i in range(40)]
    assert len(db.workloads) == 4 and not db.problems


def test_sigkill_at_any_moment_loses_no_finished_record(tmp_path, host_key, caplog):
    """A writer is killed with SIGKILL at random moments, 30 times: every record it acknowledged is there."""
    folder = tmp_path / host_key
    TuningDatabase(folder, host_key)
    rng = random.Random(1234)
    acked: set[tuple[int, int]] = set()
    torn = 0
    for tag in range(30):
        read_fd, write_fd = os.pipe()
        pid = _fork(_writer, folder, host_key, tag, 10_000, write_fd)
        os.close(write_fd)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_fd) as pipe:
            acked |= {tuple(map(int, ln.split())) for ln in pipe.read().splitlines()}
        with caplog.at_level(logging.WARNING, logger="dlc.tune"):
            db = TuningDatabase(folder, host_key)  # loads, whatever the moment of the kill
        torn = len(db.problems)
        missing = acked - set(_tagged(db))
        assert not missing, f"after kill {tag}: acknowledged records lost: {sorted(missing)[:5]}"
    assert len(acked) > 30  # the writers did get work done between kills
    assert torn <= 30  # at most one torn line per kill


def test_rewrite_is_atomic_and_keeps_workload_indexes(db, host_key):
    for k in range(6):
        commit_tiny(db, k % 2 + 4, [float(k + 1) * 1e-6], factor=k + 1)
    dropped = db.rewrite_records([r for r in db.records if r.run_secs[0] < 3.5e-6])
    assert dropped == 3
    again = TuningDatabase(db.folder, host_key)
    assert sorted(r.run_secs[0] for r in again.records) == pytest.approx([1e-6, 2e-6, 3e-6])
    assert {int(r.workload.mod["main"].params[0].ty.shape[0]) for r in again.records} == {4, 5}


def test_export_faster_only_keeps_what_a_compile_would_apply(db, host_key, tmp_path):
    from dlc.tune import dbtools

    won = commit_tiny(db, 4, [1e-6])  # beats its untuned schedule (2 us)
    lost = commit_tiny(db, 8, [5e-6])  # loses to its untuned schedule (3 us, timed twice: the best counts)
    target = won.target
    db.commit_baseline(won.workload, "hand:x", "a" * 64, [2e-6], target)
    db.commit_baseline(lost.workload, "hand:x", "b" * 64, [9e-6], target)
    db.commit_baseline(lost.workload, "hand:x", "b" * 64, [3e-6], target)
    (everything,) = dbtools.export(db.folder.parent, tmp_path / "all")
    (shipped,) = dbtools.export(db.folder.parent, tmp_path / "ship", faster_only=True)
    assert len(TuningDatabase(everything, host_key).workloads) == 2
    ship = TuningDatabase(shipped, host_key)
    assert len(ship.workloads) == 1 and ship.records[0].run_secs == [1e-6]
    assert [b.run_secs for b in ship.baselines] == [[2e-6]]  # its baseline travels with it


def test_a_record_that_loses_side_by_side_does_not_win(db, host_key):
    from dlc.tune.database import record_sha256, record_wins

    rec = commit_tiny(db, 4, [1e-6])  # looked 3x faster than the baseline timed before it ...
    target = rec.target
    db.commit_baseline(rec.workload, "hand:x", "a" * 64, [3e-6], target)
    assert record_wins(db, rec.workload, rec, "a" * 64)
    # ... but alternating with it, the hand schedule's fastest round is the faster one
    db.commit_baseline(rec.workload, "hand:x", "a" * 64, [2.0e-6, 2.1e-6, 1.9e-6], target,
                       versus={"record_sha256": record_sha256(rec), "run_secs": [2.2e-6, 2.0e-6, 2.3e-6]})
    again = TuningDatabase(db.folder, host_key)  # and the verdict is on disk
    entry = again.find(tiny_workload(4))
    assert not record_wins(again, entry, again.best(entry), "a" * 64)
    assert not record_wins(again, entry, again.best(entry))  # what `db export --faster-only` asks


@pytest.mark.parametrize("hand, tuned, wins", [
    # The host slowed down for the first three rounds (a real series of SqueezeNet's conv, microseconds):
    # medians say the record is 1.5x faster, the quiet rounds that the hand schedule is.
    ([142, 130, 126, 67, 67], [122, 112, 83, 75, 75], False),
    ([100, 101, 99, 100, 100], [99, 99, 98, 99, 100], False),  # a tie (within PAIRED_MARGIN) keeps the rule
    ([100, 160, 101, 99, 100], [90, 91, 150, 90, 89], True),
])
def test_the_side_by_side_verdict_compares_the_fastest_rounds(db, hand, tuned, wins):
    from dlc.tune.database import paired_verdict, record_sha256

    rec = commit_tiny(db, 5, [1e-6])
    db.commit_baseline(rec.workload, "hand:x", "a" * 64, [h * 1e-6 for h in hand], rec.target,
                       versus={"record_sha256": record_sha256(rec), "run_secs": [t * 1e-6 for t in tuned]})
    assert paired_verdict(db, rec.workload, rec, "a" * 64) is wins
