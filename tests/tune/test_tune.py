"""dlc tune end to end on a tiny model: records, resume, compile applies them, SIGINT and SIGKILL."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import conv_bn_relu_model, conv_model, ort_run, rand

import dlc
from dlc.cli import main
from dlc.target import host_target, target_key
from dlc.tune.database import TuningDatabase

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--batch", "4", "--population", "32", "--seed", "1", "--timeout", "120"]  # tiny searches for CI
CONV = "fused_conv2d*"  # the tiny model's conv kernel (the others are layout transforms)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(conv_model(c=4, k=8, hw=8), path)
    return path


@pytest.fixture(scope="module")
def tuned(tiny, tmp_path_factory):
    """One real tuning run through the CLI: 4 trials of the tiny model's conv kernel."""
    work = tmp_path_factory.mktemp("tuned")
    db, plot = work / "db", work / "curve.png"
    t0 = time.perf_counter()
    code = main(["tune", str(tiny), "--tasks", CONV, "--trials", "4", "--db", str(db), "--plot", str(plot), "-q",
                 *FAST])
    assert code == 0
    folder = db / target_key(host_target())
    # the baseline, and a line of paired timings beside the best record if it looked faster (Tuner.confirm)
    baselines = len(TuningDatabase(folder, folder.name).baselines)
    assert baselines in (1, 2)
    return {"db": db, "plot": plot, "folder": folder, "seconds": time.perf_counter() - t0, "baselines": baselines}


def _conv(model: dlc.CompiledModel) -> dict:
    (k,) = [k for k in model.kernels if k["name"].startswith("fused_conv2d")]
    return k


def _copy(tuned: dict, root: Path, baseline_secs: float, fingerprint: str | None = None) -> Path:
    """The tuned database with its baseline measurement replaced: decides record vs rule without noise."""
    src = TuningDatabase(tuned["folder"], tuned["folder"].name)
    dst = TuningDatabase(root / src.key, src.key)
    entry = dst.commit_workload(src.workloads[0].mod)
    for r in src.records:
        dst.commit(entry, r.trace, r.run_secs, r.target, r.args_info)
    b = src.baselines[0]  # (and its confirmation rounds, if a record beat it: same rule, same schedule)
    dst.commit_baseline(entry, b.rule, fingerprint or b.trace_sha256, [baseline_secs], b.target)
    return root


def test_tune_writes_tvm_records_with_provenance_and_a_plot(tuned, tiny):
    folder = tuned["folder"]
    db = TuningDatabase(folder, folder.name)
    assert len(db.workloads) == 1
    # 4 searched, and the rule's own schedule: the search's starting point, a record with the baseline's times
    assert len(db.records) == 5 and all(r.valid for r in db.records)
    assert sum(r.run_secs == db.baselines[0].run_secs for r in db.records) == 1
    # the schedule the rules give the kernel, measured beside the records (again after, if a record beat it)
    assert len(db.baselines) == tuned["baselines"] and len({(b.rule, b.trace_sha256) for b in db.baselines}) == 1
    baseline = db.baselines[0]
    assert baseline.rule.startswith(("hand:", "fallback:")) and all(b.valid for b in db.baselines)
    runs = json.loads((folder / "provenance.json").read_text())
    assert len(runs) == 1
    run = runs[0]
    assert run["command"].startswith(f"dlc tune {tiny}") and "--trials 4" in run["command"]
    assert run["trials_per_task"] == 4 and run["trials_run"] == 4 and run["cpu"] and run["versions"]["tvm"]
    assert run["model_sha256"] and run["tasks"][0]["baseline"] == baseline.rule
    assert run["tasks"][0]["best_us"] > 0 and run["tasks"][0]["baseline_us"] > 0
    assert "dlc tune" in (folder / "PROVENANCE.md").read_text()
    assert tuned["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compile_applies_records_and_says_so(tuned, tiny, tmp_path, capsys):
    db = _copy(tuned, tmp_path, baseline_secs=1.0)  # every record beats a 1 s baseline
    model = dlc.compile(str(tiny), tuning_dbs=(str(db),))
    assert _conv(model)["origin"] == "tuned"
    used = model.metadata["tuning_db"]
    assert target_key(host_target()) in [d["key"] for d in used["databases"]]
    (applied,) = used["records_applied"]
    assert applied["db"] == str(db / target_key(host_target())) and applied["records"] == 5
    x = rand(1, 4, 8, 8)
    np.testing.assert_allclose(model.run({"x": x})["y"], ort_run(onnx.load(tiny), {"x": x})[0], atol=1e-4)
    plain = dlc.compile(str(tiny), tuning_db=False)
    assert _conv(plain)["origin"].startswith(("hand:", "fallback:")) and plain.metadata["tuning_db"] is None
    out = tmp_path / "m.so"
    assert main(["compile", str(tiny), "--tuning-db", str(db), "--explain", "-q", "-o", str(out)]) == 0
    assert re.search(r"fused_conv2d\S*.*tuned", capsys.readouterr().out)
    assert main(["compile", str(tiny), "--tuning-db", str(db), "--no-tuning-db", "-o", str(out)]) == 1


def test_rerun_resumes_tasks_at_budget_are_skipped(tuned, tiny):
    report = dlc.tune.tune(str(tiny), config=dlc.tune.TuneConfig(trials=4, db=tuned["db"], tasks=CONV, batch=4,
                                                                  population=32))
    (r,) = report.results
    assert r.status == "at budget" and r.trials_run == 0 and r.trials_before == 4
    again = TuningDatabase(tuned["folder"], tuned["folder"].name)
    assert len(again.records) == 5 and len(again.baselines) == tuned["baselines"]  # not measured again
    last = json.loads((tuned["folder"] / "provenance.json").read_text())[-1]  # the API call is on record too
    assert last["command"].startswith("dlc.tune.tune(") and last["trials_run"] == 0


def test_hand_written_schedule_wins_when_it_is_fastest(tuned, tiny, tmp_path):
    """The rule's schedule measured fastest: the compile uses the rule, under its own name."""
    rule = TuningDatabase(tuned["folder"], tuned["folder"].name).baselines[0].rule
    model = dlc.compile(str(tiny), tuning_dbs=(str(_copy(tuned, tmp_path / "a", baseline_secs=1e-9)),))
    assert _conv(model)["origin"] == rule
    assert model.metadata["tuning_db"]["hand_written_won"][0]["why"] == f"{rule} measured fastest"
    # Baselines of another version of the rules only: the record was never timed against today's schedule,
    # which may be the faster one now; the rule schedules the kernel until `dlc db verify` times the two.
    model = dlc.compile(str(tiny), tuning_dbs=(str(_copy(tuned, tmp_path / "b", 1e-9, fingerprint="0" * 64)),))
    assert _conv(model)["origin"] == rule
    assert "changed since the record was measured" in model.metadata["tuning_db"]["hand_written_won"][0]["why"]


def test_db_commands(tuned, tmp_path, capsys):
    db = str(tuned["db"])
    assert main(["db", "stats", "--db", db, "--json"]) == 0
    (stats,) = json.loads(capsys.readouterr().out)
    assert (stats["workloads"], stats["records"], stats["valid"], stats["baselines"]) == (1, 5, 5, tuned["baselines"])
    assert stats["runs"] >= 1 and stats["corrupt_lines"] == 0 and stats["this_machine"]
    assert main(["db", "list", "--db", db]) == 0
    assert "conv2d" in capsys.readouterr().out
    assert main(["db", "export", str(tmp_path / "out"), "--db", db, "--top", "2"]) == 0
    exported = TuningDatabase(tmp_path / "out" / stats["key"], stats["key"])
    assert len(exported.records) == 2 and len(exported.baselines) == tuned["baselines"]
    assert (exported.folder / "provenance.json").exists()
    assert main(["db", "merge", db, "--db", str(tmp_path / "merged")]) == 0
    assert main(["db", "merge", db, "--db", str(tmp_path / "merged")]) == 0  # twice: no duplicates
    merged = TuningDatabase(tmp_path / "merged" / stats["key"], stats["key"])
    assert len(merged.records) == 5 and len(merged.baselines) == tuned["baselines"]
    assert main(["db", "prune", "--db", str(tmp_path / "merged"), "--top", "1"]) == 0
    assert len(TuningDatabase(merged.folder, stats["key"]).records) == 1


def test_bad_tasks_pattern_and_trials(tiny, tmp_path):
    assert main(["tune", str(tiny), "--tasks", "nothing_like_this*", "--db", str(tmp_path)]) == 1
    assert main(["tune", str(tiny), "--trials", "0", "--db", str(tmp_path)]) == 1


def test_symbolic_shapes_are_skipped(tmp_path):
    model = tmp_path / "dyn.onnx"
    onnx.save(conv_bn_relu_model(n="N"), model)
    report = dlc.tune.tune(str(model), config=dlc.tune.TuneConfig(trials=2, db=tmp_path))
    assert {r.status for r in report.results} == {"skipped: symbolic shape (fix it with --input-shape to tune)"}
    assert report.trials_run == 0


def test_cuda_needs_rpc(tiny, tmp_path, capsys):
    assert main(["tune", str(tiny), "--target", "cuda", "--db", str(tmp_path)]) == 3
    assert "--rpc-tracker" in capsys.readouterr().err


# ---- interrupting a real tuner ----------------------------------------------------------------------------------
def _tuner(tiny: Path, db: Path, trials: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dlc", "tune", str(tiny), "--trials", str(trials), "--db", str(db),
                             "--tasks", CONV, "--plot", "none", "--batch", "2", "--population", "32",
                             "--timeout", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _wait_for_trials(proc: subprocess.Popen, at_least: int, lines: list[str]) -> int:
    """Read the tuner's progress lines until it reports ``at_least`` trials; return the count it reported."""
    pattern = re.compile(r": (\d+)/\d+ trials")
    for line in proc.stderr:
        lines.append(line)
        m = pattern.search(line)
        if m and int(m.group(1)) >= at_least:
            return int(m.group(1))
    raise AssertionError("tuner ended early:\n" + "".join(lines))


def _reap(proc: subprocess.Popen) -> None:
    """Kill what is left of the tuner's process group (its build/run workers), by the group we started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def test_sigint_stops_after_the_batch_with_every_record_saved(tiny, tmp_path):
    proc = _tuner(tiny, tmp_path, trials=40)
    lines: list[str] = []
    try:
        reported = _wait_for_trials(proc, 2, lines)
        os.kill(proc.pid, signal.SIGINT)
        t0 = time.perf_counter()
        rest_out, rest_err = proc.communicate(timeout=240)
        stop_secs = time.perf_counter() - t0
    finally:
        _reap(proc)
    assert proc.returncode == 130, "".join(lines) + rest_err
    assert "stopping after the batch in flight" in rest_err and "rerun the same command to resume" in rest_err
    assert "interrupted" in rest_out
    folder = tmp_path / target_key(host_target())
    db = TuningDatabase(folder, folder.name)
    assert len(db.records) >= reported  # every batch it reported is on disk
    assert json.loads((folder / "provenance.json").read_text())[-1]["interrupted"] is True
    assert stop_secs < 120


@pytest.mark.parametrize("kills", [2, pytest.param(10, marks=pytest.mark.slow)])
def test_sigkill_in_a_loop_loses_no_finished_record(tiny, tmp_path, kills):
    """SIGKILL a real tuner at random moments; after each kill the database loads, holds everything it held
    before, and every trial the tuner had reported; the next run resumes. (tests/tune/test_database.py kills
    a database writer 30 times, at every moment of a commit.)"""
    rng = random.Random(kills)
    folder = tmp_path / target_key(host_target())
    seen: set[str] = set()
    reported_total = 0
    for kill in range(kills):
        proc = _tuner(tiny, tmp_path, trials=40)
        lines: list[str] = []
        try:
            reported_total = _wait_for_trials(proc, reported_total + 2, lines)
            time.sleep(rng.uniform(0.0, 3.0))  # somewhere in the next batch: search, build, run or commit
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            _reap(proc)
        db = TuningDatabase(folder, folder.name)
        lines_now = {r.line() for r in db.records}
        assert seen <= lines_now, f"kill {kill}: records that were on disk are gone"
        assert len(db.records) >= reported_total, f"kill {kill}: reported trials are missing"
        seen = lines_now
