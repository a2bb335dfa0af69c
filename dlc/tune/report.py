"""What ``dlc tune`` shows: a live progress bar, the final table, and a PNG of the tuning curve."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from .driver import Progress, TaskResult, TuneReport


def _us(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:,.1f}"


def _speedup(r: TaskResult) -> str:
    return f"{r.speedup:.2f}x" if r.speedup else "-"


class LiveProgress(Progress):
    """A rich progress display on a terminal (overall + current task); one line per batch elsewhere."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self._bar: RichProgress | None = None
        self._overall = self._current = None
        self._index = 0
        self._report: TuneReport | None = None

    def start(self, report: TuneReport) -> None:
        self._report = report
        self.console.print(f"tuning {len(report.results)} kernels of {report.model} for {report.key}, "
                           f"{report.trials} trials each, {report.threads} threads -> {report.folder}")
        if self.live:
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                     TimeRemainingColumn(), console=self.console, transient=False)
            self._bar.start()
            self._overall = self._bar.add_task("all kernels", total=report.trials * len(report.results), best="")

    def task(self, result: TaskResult) -> None:
        self._index += 1
        if self._bar is None:
            self.console.print(f"[{self._index}/{len(self._report.results)}] {result.task.name}: "
                               f"{result.task.shape_text} (x{result.task.weight})", highlight=False)
        else:
            if self._current is not None:
                self._bar.remove_task(self._current)
            self._current = self._bar.add_task(f"[{self._index}/{len(self._report.results)}] {result.task.name[:40]}",
                                               total=self._report.trials, best="")

    def batch(self, result: TaskResult) -> None:
        best = f"best {_us(result.best_us)} us" + (f" ({_speedup(result)} vs {result.baseline})"
                                                   if result.speedup else "")
        if self._bar is not None:
            self._bar.update(self._current, completed=min(result.trials, self._report.trials), best=best)
            done = sum(min(r.trials, self._report.trials) for r in self._report.results)
            self._bar.update(self._overall, completed=done)
        else:
            self.console.print(f"[{self._index}/{len(self._report.results)}] {result.task.name}: "
                               f"{result.trials}/{self._report.trials} trials, {best}", highlight=False)

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]{message}[/]")

    def finish(self, report: TuneReport) -> None:
        if self._bar is not None:
            self._bar.stop()


def results_table(report: TuneReport) -> Table:
    table = Table(title=f"tuned {report.model} for {report.key} in {report.seconds:.0f}s "
                        f"({report.trials_run} trials this run)" + (" - interrupted" if report.interrupted else ""),
                  title_justify="left")
    for col, just in (("task", "left"), ("shape", "left"), ("trials", "right"), ("best us", "right"),
                      ("GFLOP/s", "right"), ("baseline us", "right"), ("speedup", "right"), ("status", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in report.results:
        name = r.task.name + (f" (x{r.task.weight})" if r.task.weight > 1 else "")
        table.add_row(name, r.task.shape_text, str(r.trials), _us(r.best_us),
                      f"{r.gflops:.1f}" if r.gflops else "-", f"{_us(r.baseline_us)} {r.baseline}",
                      _speedup(r), r.status)
    return table


def plot_curve(report: TuneReport, path: str | os.PathLike) -> Path:
    """Left: each task's speedup over its baseline vs its trials. Right: the model's summed kernel time
    (weight x best latency) vs trials of this run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in report.results:  # a kernel runs at least as fast as its untuned schedule: that is the floor
        pts = [(n, r.baseline_us / min(us, r.baseline_us)) for n, us in r.curve
               if r.baseline_us and us and not math.isnan(us)]
        if pts:
            left.plot(*zip(*pts), marker=".", label=r.task.name[:32])
    left.axhline(1.0, color="gray", lw=0.8, ls="--")
    left.set_xlabel("trials of the task")
    left.set_ylabel("speedup over the untuned schedule")
    left.set_title("per task")
    if len(report.results) <= 12:
        left.legend(fontsize=7)
    # Summed kernel time: every task at its best so far, the tasks tuned one after another.
    current = {id(r): _start(r) for r in report.results}
    xs, ys, offset = [0], [_total(report, current)], 0
    for r in report.results:
        start = r.curve[0][0] if r.curve else 0
        for n, us in r.curve[1:]:
            if not math.isnan(us):
                current[id(r)] = min(us, r.baseline_us or us)
            xs.append(offset + n - start)
            ys.append(_total(report, current))
        offset = xs[-1]
    right.plot(xs, [y / 1e3 for y in ys], marker=".")
    right.set_xlabel("trials (this run)")
    right.set_ylabel("sum of kernel latencies (ms)")
    right.set_title(f"{report.model}, {report.key}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def _start(r: TaskResult) -> float:
    if r.curve and not math.isnan(r.curve[0][1]):
        return min(r.curve[0][1], r.baseline_us or r.curve[0][1])
    return r.baseline_us or 0.0


def _total(report: TuneReport, current: dict[int, float]) -> float:
    return sum(r.task.weight * current[id(r)] for r in report.results)


def db_stats_table(rows: list[dict], root) -> Table:
    table = Table(title=f"tuning databases in {root}", title_justify="left")
    cols = {"target key": "key", "workloads": "workloads", "records": "records", "valid": "valid",
            "failed": "failed", "baselines": "baselines", "corrupt lines": "corrupt_lines",
            "other targets": "foreign_target", "rehashed": "rehashed", "runs": "runs", "last run": "last_run"}
    for col in cols:
        table.add_column(col)
    for r in rows:
        cells = [str(r[k]) for k in cols.values()]
        cells[0] += " (this machine)" if r["this_machine"] else ""
        table.add_row(*cells)
    return table


def db_list_table(rows: list[dict], root) -> Table:
    table = Table(title=f"workloads in {root}", title_justify="left")
    for col in ("target key", "#", "blocks", "shapes", "records", "best us", "GFLOP/s", "untuned us"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["key"], str(r["workload"]), r["blocks"], " ".join("x".join(map(str, s)) for s in r["shapes"]),
                      str(r["records"]), _us(r["best_us"]), f"{r['gflops']:.1f}" if r["gflops"] else "-",
                      f"{_us(r['baseline_us'])} {r['baseline']}" if r["baseline_us"] else "-")
    return table


def verify_table(rows: list[dict]) -> Table:
    """``dlc db verify``: each applied record against the untuned schedule, fastest rounds in the model."""
    table = Table(title="tuned kernels against their untuned schedules, in the model (fastest round each)")
    for col in ("kernel", "calls", "untuned", "untuned us", "tuned us", "speedup", "verdict"):
        table.add_column(col, justify="right" if col in ("calls", "untuned us", "tuned us", "speedup") else "left")
    for r in rows:
        table.add_row(r["kernel"], str(r["calls"]), r["hand_rule"], f"{r['hand_us']:.1f}", f"{r['tuned_us']:.1f}",
                      f"{r['hand_us'] / r['tuned_us']:.2f}x", "applies" if r["wins"] else "lost: untuned stays")
    return table
