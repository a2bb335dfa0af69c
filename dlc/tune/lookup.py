"""The compile-time side of tuning: which databases a compile reads, and the ``tuned`` lookup it gives the
schedule phase (precedence user > tuned > hand > fallback, see ``dlc/schedule/apply.py``).

A kernel gets the fastest valid record for its workload across the databases, from records of this target
key only, unless the schedule the rules give it today was measured (by ``dlc tune``, beside the records) at
least as fast: then the lookup answers None and the rule schedules the kernel under its own name. It answers
None too when the records were measured against an earlier version of that schedule and never against
today's (a rule changed): until ``dlc db verify`` or ``dlc tune`` times the two, the rule's schedule is used.
A database with no untuned timings at all for the workload (records imported from elsewhere) applies as is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tvm import s_tir, tirx
from tvm.target import Target

from .._builtin import tuning_logs_dir
from ..errors import DlcError
from ..options import CompileOptions
from ..schedule.apply import untuned_schedule
from ..target import target_key
from .database import RECORD_FILE, WORKLOAD_FILE, StoredRecord, TuningDatabase, key_folders, paired_verdict
from .tasks import schedule_fingerprint, workload_module

log = logging.getLogger("dlc.tune")


@dataclass
class _Hit:
    db: TuningDatabase
    record: StoredRecord


class TunedRecords:
    """``(func, target) -> Schedule | None`` over several databases, remembering what it applied."""

    def __init__(self, databases: list[TuningDatabase]):
        self.databases = databases
        self.applied: list[dict] = []

    def best(self, func: tirx.PrimFunc) -> _Hit | None:
        mod = workload_module(func)
        hits = []
        for db in self.databases:
            entry = db.find(mod)
            rec = db.best(entry) if entry is not None else None
            if rec is not None:
                hits.append(_Hit(db, rec))
        return min(hits, key=lambda h: h.record.mean_secs, default=None)

    def __call__(self, func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
        if not any(db.records for db in self.databases):
            return None
        hit = self.best(func)
        if hit is None:
            return None
        info = {"db": str(hit.db.folder), "workload": hit.record.workload.index,
                "latency_us": round(hit.record.mean_secs * 1e6, 3),
                "records": len(hit.db.records_of(hit.record.workload))}
        baseline = untuned_schedule(hit.record.workload.mod["main"], target)
        if baseline is not None:
            label, sch = baseline
            fingerprint = schedule_fingerprint(sch)
            entries = [(db, e) for db in self.databases if (e := db.find(hit.record.workload.mod)) is not None]
            times = [t for db, e in entries if (t := db.baseline_secs(e, fingerprint)) is not None]
            paired = paired_verdict(hit.db, hit.record.workload, hit.record, fingerprint)
            if paired is False or (paired is None and times and min(times) <= hit.record.mean_secs):
                self.applied.append({**info, "applied": False, "why": f"{label} measured fastest",
                                     "baseline_us": round(min(times) * 1e6, 3)})
                return None  # the rule's schedule is faster: let it schedule the kernel under its own name
            if paired is None and not times and any(db.baselines_of(e) for db, e in entries):
                # The record was measured against an earlier version of the rule's schedule, never against
                # today's: it may be the slower one now (ShuffleNet's depthwise conv once was, 0.76x).
                self.applied.append({**info, "applied": False,
                                     "why": f"{label} changed since the record was measured; "
                                            "`dlc db verify` or `dlc tune` times the two"})
                return None
        try:
            sch = hit.record.schedule()
        except Exception as e:  # a record the current TVM cannot replay: say so, fall back to the rules
            log.warning("tuning record of workload %d in %s does not apply (%s); using the rules",
                        hit.record.workload.index, hit.db.folder, str(e).strip().splitlines()[0][:200])
            return None
        self.applied.append({**info, "applied": True})
        scheduled = sch.mod["main"]
        if func.attrs is None or "global_symbol" not in func.attrs:  # the workload's "main" is not the kernel's
            scheduled = scheduled.without_attr("global_symbol")
        return s_tir.Schedule(scheduled)

    def summary(self) -> dict:
        """What the artifact metadata records under ``tuning_db``."""
        return {
            "databases": [{"path": str(db.folder), "key": db.key, "workloads": len(db.workloads),
                           "records": len(db.records)} for db in self.databases],
            "records_applied": [a for a in self.applied if a["applied"]],
            "hand_written_won": [a for a in self.applied if not a["applied"]],
        }


def open_tuning_records(target: Target, options: CompileOptions) -> TunedRecords | None:
    """The databases a compile applies: the shipped ``tuning_logs/`` and every ``--tuning-db``; None with
    ``tuning_db=False``."""
    if not options.tuning_db:
        if options.tuning_dbs:
            raise DlcError("--tuning-db and --no-tuning-db contradict each other")
        return None
    roots = [tuning_logs_dir()]
    for d in options.tuning_dbs:
        path = Path(d)
        if not path.is_dir():
            raise DlcError("no such tuning database directory", where=str(path))
        roots.append(path)
    databases, seen = [], set()
    for root in roots:
        for folder in _folders_for(root, target):
            if folder.resolve() not in seen:
                seen.add(folder.resolve())
                databases.append(TuningDatabase(folder, target_key(target)))
    return TunedRecords(databases)


def _folders_for(root: Path, target: Target) -> list[Path]:
    key = target_key(target)
    if (root / key / WORKLOAD_FILE).exists():
        return [root / key]
    if (root / WORKLOAD_FILE).exists() and (root / RECORD_FILE).exists():
        return [root]  # a bare database folder: its records are still filtered by target key
    return [f for k, f in key_folders(root) if k == key]
