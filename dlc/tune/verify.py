"""``dlc db verify MODEL``: each record a compile of MODEL applies, timed against the schedule it replaces,
inside the model, alternately; the verdicts go into the database.

``Tuner.confirm`` times the two schedules as standalone kernels on MetaSchedule's random inputs. This check
compiles the model twice (with the database, and with hand-written schedules only: the same kernels under
the same names), captures each tuned kernel's arguments at its first call in the model, and calls the two
compiled kernels with them in turn, ``rounds`` times. Its verdict is written as the tuner's is, a baseline
line whose ``versus`` is the record (``database.paired_verdict``: fastest rounds, ``PAIRED_MARGIN``); the
latest side-by-side timing decides, so a record that loses here stops applying, and ``dlc db export
--faster-only`` leaves it out.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping

import numpy as np

from ..options import CompileOptions
from ..runtime.bench import random_feeds
from ..runtime.profile import _run_instrumented
from ..runtime.threads import set_num_threads
from ..schedule.apply import untuned_schedule
from ..target import resolve_target, target_json
from .database import paired_verdict, record_sha256
from .lookup import open_tuning_records
from .tasks import extract_tasks, schedule_fingerprint


def per_call_secs(f, args, min_secs: float = 5e-3) -> float:
    """Seconds per call of ``f(*args)``, over calls lasting at least ``min_secs`` together."""
    f(*args)
    t = time.perf_counter()
    f(*args)
    number = max(1, int(min_secs / max(time.perf_counter() - t, 1e-6)))
    t = time.perf_counter()
    for _ in range(number):
        f(*args)
    return (time.perf_counter() - t) / number


def first_call_args(model, feeds: Mapping[str, np.ndarray], names: set[str]) -> dict[str, tuple]:
    """The arguments of each named kernel's first call in a run of ``model``."""
    args: dict[str, tuple] = {}

    def capture(func, name, before, ret, *call_args):
        if before and name in names and name not in args:
            args[name] = call_args
        return 0

    _run_instrumented(model, feeds, capture)
    return args


def side_by_side(tuned, hand, kernels: list[str], rounds: int,
                 feeds: Mapping[str, np.ndarray] | None = None) -> dict[str, dict[str, list[float]]]:
    """Seconds per call of each kernel in the two compiled models, alternately, ``rounds`` times each,
    with the arguments of its first call in ``tuned``: {kernel: {"tuned": [...], "hand": [...]}}."""
    feeds = feeds if feeds is not None else random_feeds(tuned.inputs)
    args = first_call_args(tuned, feeds, set(kernels))
    libs = {"tuned": tuned.kernel_library(), "hand": hand.kernel_library()}
    out = {}
    for kernel in kernels:
        if kernel not in args:
            continue  # not called in this run (a branch not taken)
        samples = {"tuned": [], "hand": []}
        for _ in range(rounds):
            for side in ("hand", "tuned"):
                samples[side].append(per_call_secs(libs[side][kernel], args[kernel]))
        out[kernel] = samples
    return out


def verify(model: str | os.PathLike, options: CompileOptions, *, rounds: int = 9, threads: int | None = None,
           say: Callable[[str], None] = lambda msg: None) -> list[dict]:
    """Time every applied record of ``options``' databases against its untuned schedule in ``model``, write
    each verdict into the record's database, and return one row per record."""
    from ..api import compile as dlc_compile  # the API sits above dlc.tune

    target = resolve_target(options.target)
    say("finding the kernels and their records")
    _, tasks = extract_tasks(model, options)
    records = open_tuning_records(target, options)
    say("compiling with the records and without")
    tuned = dlc_compile(model, options=options)
    hand = dlc_compile(model, options=dataclasses.replace(options, tuning_db=False, tuning_dbs=()))
    applied = {k["name"] for k in tuned.kernels if k["origin"] == "tuned"}
    hand_origin = {k["name"]: k["origin"] for k in hand.kernels}
    chosen = [(t, records.best(t.func)) for t in tasks if t.name in applied] if records else []
    say(f"timing {len(chosen)} tuned kernels against their untuned schedules, {rounds} rounds")
    for m in (tuned, hand):
        m.virtual_machine()  # the runtime's default thread count, then ours
    set_num_threads(threads)
    timings = side_by_side(tuned, hand, [t.name for t, _ in chosen], rounds)
    rows = []
    for task, hit in chosen:
        if hit is None or task.name not in timings:
            continue
        label, sch = untuned_schedule(hit.record.workload.mod["main"], target)
        fingerprint = schedule_fingerprint(sch)
        samples = timings[task.name]
        hit.db.commit_baseline(hit.record.workload, label, fingerprint, samples["hand"], target_json(target),
                               versus={"record_sha256": record_sha256(hit.record), "run_secs": samples["tuned"]})
        wins = paired_verdict(hit.db, hit.record.workload, hit.record, fingerprint)
        rows.append({"kernel": task.name, "calls": task.calls, "hand_rule": hand_origin.get(task.name, label),
                     "db": str(hit.db.folder), "workload": hit.record.workload.index,
                     "hand_us": min(samples["hand"]) * 1e6, "tuned_us": min(samples["tuned"]) * 1e6,
                     "wins": bool(wins)})
    return rows
