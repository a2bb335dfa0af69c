"""The tuning report without tuning: live progress on a terminal, the results table, the curve PNG."""

from __future__ import annotations

import io

from rich.console import Console
from tuning_helpers import tiny_workload

from dlc.target import host_target
from dlc.tune.driver import TaskResult, TuneReport
from dlc.tune.report import LiveProgress, plot_curve, results_table
from dlc.tune.tasks import Task


def _report(tmp_path) -> TuneReport:
    tasks = [Task(f"k{i}", [f"k{i}"], tiny_workload(8 * (i + 1)), "B", [[8 * (i + 1)]], 1e-3, calls=i + 1)
             for i in range(2)]
    results = [TaskResult(t, workload=i, baseline="hand:x", baseline_us=100.0 * (i + 1)) for i, t in enumerate(tasks)]
    return TuneReport("m.onnx", host_target(), "key", tmp_path, 8, results, threads=2)


def test_live_progress_table_and_curve(tmp_path):
    report = _report(tmp_path)
    buf = io.StringIO()
    progress = LiveProgress(Console(file=buf, force_terminal=True, width=120))
    progress.start(report)
    for r in report.results:
        progress.task(r)
        r.curve.append((0, r.baseline_us))
        for n, us in ((4, r.baseline_us * 0.8), (8, r.baseline_us * 0.5)):
            r.trials_run, r.best_us = n, us
            r.curve.append((n, us))
            progress.batch(r)
        r.status = "tuned"
    progress.finish(report)
    assert "all kernels" in buf.getvalue() and "best 100.0 us (2.00x vs hand:x)" in buf.getvalue()
    table = io.StringIO()
    Console(file=table, width=200).print(results_table(report))
    assert "k1 (x2)" in table.getvalue() and "2.00x" in table.getvalue()
    png = plot_curve(report, tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plain_progress_prints_a_line_per_batch(tmp_path):
    report = _report(tmp_path)
    buf = io.StringIO()
    progress = LiveProgress(Console(file=buf, force_terminal=False, width=200))
    progress.start(report)
    r = report.results[0]
    progress.task(r)
    r.trials_run, r.best_us = 4, 50.0
    progress.batch(r)
    assert "[1/2] k0: 4/8 trials, best 50.0 us (2.00x vs hand:x)" in buf.getvalue()
