"""``dlc tune``: MetaSchedule + XGBoost over the kernels ``dlc compile`` builds, into a target-aware database.

For each task (heaviest first):

1. **Baseline.** The schedule the kernel gets without tuning (user > hand > fallback rule) is measured with
   the same builder and runner, once per version of the rules, and stored beside the records. The
   compile-time lookup applies a record only if it beat that measurement, so tuning never leaves a kernel
   slower than its hand-written schedule.
2. **Resume.** Records already in the database count: a task at its budget is skipped, one part-way gets
   only the rest of its trials (and MetaSchedule seeds its search with the best records so far).
3. **Search.** MetaSchedule's evolutionary search with the XGBoost cost model (shared by all tasks), in
   batches; every measured candidate is written to disk as soon as its batch is measured.

SIGINT/SIGTERM: the first one stops after the batch in flight (its records are saved); a second one stops at
once (that batch is lost, everything before it is on disk). SIGKILL at any moment leaves a database that
loads (see ``database.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from tvm import s_tir
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from .._builtin import tuning_logs_dir
from ..errors import DlcError, TuneError
from ..options import CompileOptions
from ..schedule.apply import untuned_schedule
from ..target import host_cpu_count, is_cuda, target_json
from . import provenance
from .database import MetaScheduleDatabase, StoredWorkload, TuningDatabase, paired_verdict, record_sha256
from .measure import (
    EVALUATOR,
    has_decisions,
    make_builder,
    make_local_runner,
    measure_alternately,
    measure_module,
    measuring_threads,
    search_space,
    secs,
)
from .rpc import RPCSettings, check_tracker, rpc_runner
from .tasks import Task, extract_tasks, schedule_fingerprint, select

log = logging.getLogger("dlc.tune")


@dataclass
class TuneConfig:
    trials: int = 64  # measured candidates per task (the baseline is extra)
    db: str | os.PathLike | None = None  # database root; default: the shipped tuning_logs/
    tasks: str | None = None  # only kernels matching this glob (or re:REGEX)
    rpc: RPCSettings | None = None  # measure on another machine
    timeout: float = 60.0  # seconds per build and per measurement (and per RPC step)
    batch: int = 32  # candidates per search iteration
    population: int = 512  # evolutionary search population
    seed: int | None = None
    runner: ms.runner.Runner | None = None  # a runner of your own (tests; a custom device farm)
    threads: int | None = None  # threads of a measured kernel on this machine (default: all cores)

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise DlcError(f"--trials must be >= 1, got {self.trials}")
        if self.timeout <= 0:
            raise DlcError(f"--timeout must be > 0, got {self.timeout}")
        if self.threads is not None and self.threads < 1:
            raise DlcError(f"--threads must be >= 1, got {self.threads}")


@dataclass
class TaskResult:
    task: Task
    workload: int = -1  # line index of the workload in the database
    baseline: str = "none"  # the rule whose schedule is the baseline
    baseline_us: float | None = None
    best_us: float | None = None
    trials_before: int = 0  # records from earlier runs
    trials_run: int = 0  # measured in this run
    status: str = "pending"  # tuned | at budget | skipped: ... | failed: ... | interrupted
    curve: list[tuple[int, float]] = field(default_factory=list)  # (trials of this task so far, best us)

    @property
    def trials(self) -> int:
        return self.trials_before + self.trials_run

    @property
    def speedup(self) -> float | None:
        if self.baseline_us and self.best_us:
            return self.baseline_us / self.best_us
        return None

    @property
    def gflops(self) -> float | None:
        return self.task.gflop / (self.best_us * 1e-6) if self.best_us and self.task.gflop else None


@dataclass
class TuneReport:
    model: str
    target: Target
    key: str
    folder: Path
    trials: int
    results: list[TaskResult]
    seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None  # why the run stopped early, if it did not finish
    threads: int = 1

    @property
    def trials_run(self) -> int:
        return sum(r.trials_run for r in self.results)


class Progress:
    """What the driver tells its observer (``report.LiveProgress`` draws it); the base class is silent."""

    def start(self, report: TuneReport) -> None: ...
    def task(self, result: TaskResult) -> None: ...
    def batch(self, result: TaskResult) -> None: ...
    def note(self, message: str) -> None: ...
    def finish(self, report: TuneReport) -> None: ...


class _Stop(Exception):
    """Raised from the measure callback to leave MetaSchedule's loop between batches."""


class _Signals:
    """First SIGINT/SIGTERM: stop after the batch in flight. Second: KeyboardInterrupt now."""

    def __init__(self, say: Callable[[str], None]):
        self.requested = False
        self._say = say
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._say(f"{signal.Signals(signum).name}: stopping after the batch in flight (its records are saved); "
                  "send it again to stop at once")

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, old in self._old.items():
                signal.signal(sig, old)


@derived_object
class _Watch(ms.measure_callback.PyMeasureCallback):
    """After each batch is on disk: update the result, report progress, stop if asked or if nothing runs."""

    def __init__(self, result: TaskResult, progress: Progress, signals: _Signals, what_runs: str):
        super().__init__()
        self.result = result
        self.progress = progress
        self.signals = signals
        self.what_runs = what_runs
        self.error: TuneError | None = None

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        if not measure_candidates:
            if self.signals.requested:
                raise _Stop
            return
        r = self.result
        built = 0
        run_errors = []
        for b, res in zip(builder_results, runner_results):
            r.trials_run += 1
            if b.error_msg:
                continue
            built += 1
            if res.error_msg:
                run_errors.append(res.error_msg)
                continue
            us = sum(secs(s) for s in res.run_secs) / len(res.run_secs) * 1e6
            if r.best_us is None or us < r.best_us:
                r.best_us = us
        r.curve.append((r.trials, r.best_us if r.best_us is not None else float("nan")))
        self.progress.batch(r)
        if built and len(run_errors) == built:
            first = " | ".join(ln for ln in run_errors[0].strip().splitlines()[:2] if ln.strip())[:300]
            self.error = TuneError(f"every candidate of the last batch failed to run on {self.what_runs}: {first}")
            raise _Stop
        if self.signals.requested:
            raise _Stop


# Alternating timings of the best record and the untuned schedule once the record looks faster (Tuner.confirm).
CONFIRM_ROUNDS = 7


def _baseline(task: Task, target: Target) -> tuple[str, s_tir.Schedule | None]:
    """The schedule a compile gives this kernel without records, as (rule label, schedule)."""
    found = untuned_schedule(task.func, target)
    if found is None:
        return "none", None if is_cuda(target) else s_tir.Schedule(task.mod)  # llvm runs it unscheduled
    return found


class Tuner:
    def __init__(self, target: Target, db: TuningDatabase, config: TuneConfig, progress: Progress,
                 say: Callable[[str], None]):
        self.target = target
        self.db = db
        self.config = config
        self.progress = progress
        self.say = say
        self.threads = measuring_threads(config.threads)
        self.builder = make_builder(target, config.timeout)
        if config.runner is not None:
            self.runner, self.what_runs = config.runner, "the given runner"
        elif config.rpc is not None:
            self.runner = rpc_runner(config.rpc, EVALUATOR)
            self.what_runs = f"the RPC server with key {config.rpc.key!r} ({config.rpc.where})"
        else:
            self.runner, self.what_runs = make_local_runner(config.timeout), "this machine"
        self.msdb = MetaScheduleDatabase(db)
        self.cost_model = ms.cost_model.XGBModel(extractor=ms.feature_extractor.PerStoreFeature(),
                                                 adaptive_training=True, num_tuning_cores=host_cpu_count())
        self.log_dir = Path(tempfile.mkdtemp(prefix="dlc-tune-logs-"))
        self.keep_logs = False

    def close(self) -> None:
        self.builder.shutdown()
        pool = getattr(self.runner, "pool", None)
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.shutdown(wait=False)
        if not self.keep_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    # ---- one task -----------------------------------------------------------------------------------------
    def measure_baseline(self, result: TaskResult, entry: StoredWorkload) -> None:
        """Measure the kernel's untuned schedule once per version of the rules (it is what a record must beat)."""
        task = result.task
        label, sch = _baseline(task, self.target)
        result.baseline = label
        if sch is None:
            return
        fingerprint = schedule_fingerprint(sch)
        known = self.db.baseline_secs(entry, fingerprint)
        if known is not None:
            result.baseline_us = known * 1e6
            return
        secs, error = measure_module(sch.mod, self.target, self.builder, self.runner)
        if error and (error.startswith("build failed") or self.what_runs == "this machine"):
            result.status = f"failed: its {label} schedule: {error}"  # this kernel's problem; the others go on
            return
        if error:  # a remote runner that cannot run this will not run the others either: stop, with the reason
            raise TuneError(f"{task.name}: measuring its {label} schedule on {self.what_runs}: {error}")
        self.db.commit_baseline(entry, label, fingerprint, secs, target_json(self.target))
        result.baseline_us = sum(secs) / len(secs) * 1e6
        if has_decisions(sch) and not is_cuda(self.target):
            # The rule's schedule is a point of the space the search explores (``search_space``): as the
            # first record, it is where the evolutionary search starts mutating tile sizes from, instead of
            # from random samples (24 random tile choices of a conv ran at 0.58x of the rule's).
            record = ms.database.TuningRecord(sch.trace, entry.workload, secs, self.target,
                                              ms.arg_info.ArgInfo.from_prim_func(sch.mod["main"]))
            self.db.commit(entry, *record.as_json())

    def confirm(self, result: TaskResult, entry: StoredWorkload) -> None:
        """Time the best record and the untuned schedule side by side before the record may win.

        The best of many candidates, each timed once, is biased low, and the baseline was timed minutes
        earlier, in another state of a shared host: in the first campaign on this machine, 41 records beat
        their baseline that way; run alternately in the model, 11 were >= 5% faster and 23 slower. So once a
        record looks faster, both are built once and timed ``CONFIRM_ROUNDS`` times, alternating; the
        baseline line keeps both series (``versus``), and ``database.paired_verdict`` decides from them.
        """
        best = self.db.best(entry)
        label, sch = _baseline(result.task, self.target)
        if best is None or sch is None or result.baseline_us is None or best.mean_secs * 1e6 >= result.baseline_us:
            return
        fingerprint = schedule_fingerprint(sch)
        if paired_verdict(self.db, entry, best, fingerprint) is not None:
            return  # this record was timed beside this schedule already
        series, error = measure_alternately([sch.mod, best.schedule().mod], self.target, self.builder, self.runner,
                                            CONFIRM_ROUNDS)
        if error:
            return  # both ran before: a failure now is the host's; keep what is stored, unconfirmed
        base_secs, rec_secs = ([statistics.median(secs) for secs in rounds] for rounds in series)
        self.db.commit_baseline(entry, label, fingerprint, base_secs, target_json(self.target),
                                versus={"record_sha256": record_sha256(best), "run_secs": rec_secs})
        result.baseline_us = min(base_secs) * 1e6
        result.best_us = min(rec_secs) * 1e6

    def previous_trials(self, result: TaskResult, entry: StoredWorkload) -> int:
        """Candidates the search measured for this workload before this run (the rule's own schedule, stored
        as a record with its baseline's timings, is not one)."""
        best = self.db.best(entry)
        result.best_us = best.mean_secs * 1e6 if best is not None else None
        baseline_runs = {tuple(b.run_secs) for b in self.db.baselines_of(entry)}
        return sum(tuple(r.run_secs) not in baseline_runs for r in self.db.records_of(entry))

    def search(self, result: TaskResult, signals: _Signals, seed: int) -> None:
        task, remaining = result.task, self.config.trials - result.trials_before
        logger = logging.getLogger(f"dlc.tune.ms.{task.name}")  # MetaSchedule's per-task log, to a file only
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        handler = logging.FileHandler(self.log_dir / f"{task.name}.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        ctx = ms.TuneContext(
            mod=task.mod, target=self.target, space_generator=search_space(task.func, self.target),
            search_strategy=ms.search_strategy.EvolutionarySearch(population_size=self.config.population),
            task_name=task.name, rand_state=seed, num_threads=host_cpu_count(), logger=logger).clone()
        watch = _Watch(result, self.progress, signals, self.what_runs)
        try:
            ms.tune_tasks(
                tasks=[ctx], task_weights=[1.0], work_dir=str(self.log_dir), max_trials_global=remaining,
                max_trials_per_task=remaining, num_trials_per_iter=min(self.config.batch, remaining),
                builder=self.builder, runner=self.runner, database=self.msdb, cost_model=self.cost_model,
                measure_callbacks=[ms.measure_callback.AddToDatabase(), ms.measure_callback.RemoveBuildArtifact(),
                                   ms.measure_callback.UpdateCostModel(), watch],
                task_scheduler="round-robin")
        except Exception as e:  # _Stop comes back wrapped by the FFI; anything else is this task's failure
            if watch.error is not None:
                raise watch.error from None
            if signals.requested:
                return
            self.keep_logs = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
            result.status = f"failed: {first} (log: {self.log_dir / (task.name + '.log')})"
            return
        if watch.error is not None:
            raise watch.error
        if result.trials_run == 0 and not signals.requested:
            self.keep_logs = True  # e.g. every sampled schedule failed verification (see the log)
            result.status = f"failed: MetaSchedule found no valid candidate (log: {self.log_dir / (task.name + '.log')})"
        elif result.status == "pending":
            result.status = "tuned"


def tune(model: str | os.PathLike | onnx.ModelProto, options: CompileOptions | None = None,
         config: TuneConfig | None = None, *, progress: Progress | None = None,
         log: Callable[[str], None] | None = None, command: str | None = None) -> TuneReport:
    """Tune the kernels of ``model`` (as ``dlc.compile(model, options=options)`` builds them).

    The run is recorded in the database's provenance (``command``: how to redo it; default: this call)."""
    options = options or CompileOptions()
    config = config or TuneConfig()
    progress = progress or Progress()
    say = log or (lambda msg: None)
    t0 = time.perf_counter()
    target, tasks = extract_tasks(model, options, say)
    tasks = select(tasks, config.tasks)
    if not tasks:
        raise DlcError(f"no kernel matches --tasks {config.tasks!r}" if config.tasks else "the model has no kernels")
    if is_cuda(target) and config.rpc is None and config.runner is None:
        raise TuneError("measuring cuda kernels needs the GPU: run an RPC server on the GPU box and pass "
                        "--rpc-tracker HOST:PORT --rpc-key KEY (see the README's tuning section)")
    if config.rpc is not None:
        say(f"checking the {config.rpc.where}")
        check_tracker(config.rpc)
    root = Path(config.db) if config.db is not None else tuning_logs_dir()
    db = TuningDatabase.open(root, target, create=True)
    if not os.access(db.folder, os.W_OK):
        raise TuneError("the tuning database is not writable; pass --db DIR", where=str(db.folder))
    name = "<ModelProto>" if isinstance(model, onnx.ModelProto) else Path(model).name
    report = TuneReport(str(name), target, db.key, db.folder, config.trials, [TaskResult(t) for t in tasks])
    signals = _Signals(progress.note)
    seeds = ms.utils.fork_seed(config.seed, n=len(tasks)) if config.seed is not None else [-1] * len(tasks)
    tuner = Tuner(target, db, config, progress, say)
    report.threads = tuner.threads
    progress.start(report)
    try:
        with signals.installed():
            for result, seed in zip(report.results, seeds):
                if signals.requested:
                    result.status = "interrupted"
                    continue
                _tune_one(tuner, result, signals, seed)
    except KeyboardInterrupt:
        report.interrupted = True
    except Exception as e:  # recorded in the provenance (the records so far are on disk), then raised
        report.error = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise
    finally:
        tuner.close()
        report.seconds = time.perf_counter() - t0
        report.interrupted = report.interrupted or signals.requested
        for r in report.results:
            if r.status == "pending":
                r.status = "interrupted" if report.interrupted else "stopped"
        progress.finish(report)
        if command is None:
            command = (f"dlc.tune.tune({str(model)!r}, options={options!r}, "
                       f"config={dataclasses.replace(config, runner=None)!r})")
        provenance.append(db.folder, db.key, provenance.entry(
            report, command, None if isinstance(model, onnx.ModelProto) else str(model),
            json.loads(json.dumps(dataclasses.asdict(options), default=list))))
    return report


def _tune_one(tuner: Tuner, result: TaskResult, signals: _Signals, seed: int) -> None:
    task, db = result.task, tuner.db
    label, _ = _baseline(task, tuner.target)
    skip = None
    if label.startswith("user:"):
        skip = f"skipped: {label} schedules it at compile time"
    elif any(isinstance(d, str) for shape in task.shapes for d in shape):
        skip = "skipped: symbolic shape (fix it with --input-shape to tune)"
    if skip:
        result.baseline, result.status = label, skip
        tuner.progress.task(result)
        return
    entry = db.commit_workload(task.mod)
    result.workload = entry.index
    tuner.progress.task(result)
    tuner.measure_baseline(result, entry)
    if result.status.startswith("failed"):
        tuner.progress.batch(result)
        return
    result.trials_before = tuner.previous_trials(result, entry)
    start = [us for us in (result.best_us, result.baseline_us) if us is not None]
    result.curve.append((result.trials, min(start) if start else float("nan")))
    if result.trials_before >= tuner.config.trials:
        result.status = "at budget"
        if not signals.requested:
            tuner.confirm(result, entry)  # a run stopped before it, or a database from an older dlc
        tuner.progress.batch(result)
        return
    tuner.search(result, signals, seed)
    if signals.requested and result.status == "pending":
        result.status = "interrupted"
    best = db.best(entry)
    if best is not None:
        result.best_us = best.mean_secs * 1e6
    if not signals.requested:
        tuner.confirm(result, entry)
    if result.speedup is not None and result.speedup < 1 and result.status == "tuned":
        result.status = f"tuned; {result.baseline} is faster and stays"  # the compile-time lookup keeps it
