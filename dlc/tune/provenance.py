"""Where records came from: every ``dlc tune`` run appends an entry to ``provenance.json`` beside the records
(and ``PROVENANCE.md``, the same for people): the exact command, model and its hash, CPU, date, trials,
versions of dlc/TVM/xgboost and dlc's git commit, wall time, and per task what was measured.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..target import describe, host_cpu_name
from ..version import versions
from .database import folder_lock, write_atomic

if TYPE_CHECKING:
    from .driver import TuneReport

FILE = "provenance.json"
MARKDOWN = "PROVENANCE.md"


@functools.cache
def dlc_commit() -> str | None:
    """The git commit of the dlc source in use (None outside a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def file_sha256(path: str | os.PathLike) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def entry(report: TuneReport, command: str, model_path: str | None, options: dict) -> dict:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "model": report.model,
        "model_sha256": file_sha256(model_path) if model_path else None,
        "options": options,
        "target": describe(report.target),
        "cpu": host_cpu_name(),
        "machine": platform.machine(),
        "threads": report.threads,
        "trials_per_task": report.trials,
        "trials_run": report.trials_run,
        "seconds": round(report.seconds, 1),
        "interrupted": report.interrupted,
        "error": report.error,
        "versions": {**versions(), "xgboost": v("xgboost-cpu") if v("xgboost-cpu") != "unknown" else v("xgboost"),
                     "dlc_commit": dlc_commit()},
        "tasks": [{"kernel": r.task.name, "kernels": r.task.kernels, "workload": r.workload,
                   "shapes": r.task.shapes, "trials": r.trials, "trials_run": r.trials_run,
                   "baseline": r.baseline, "baseline_us": _round(r.baseline_us), "best_us": _round(r.best_us),
                   "status": r.status} for r in report.results],
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def append(folder: Path, key: str, item: dict) -> Path:
    """Add ``item`` to the folder's provenance (under the database lock, atomically)."""
    path = folder / FILE
    with folder_lock(folder):
        runs = []
        if path.exists():
            try:
                runs = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                runs = []  # never lose the run because an old file is damaged; the records stay valid
        runs.append(item)
        write_atomic(path, json.dumps(runs, indent=1) + "\n")
        write_atomic(folder / MARKDOWN, markdown(key, runs))
    return path


def markdown(key: str, runs: list[dict]) -> str:
    lines = [f"# Tuning records for `{key}`", "",
             "`database_workload.json` and `database_tuning_record.json` are MetaSchedule's JSON database.",
             "Each `dlc tune` run that wrote records here is listed below (newest last); the full details",
             "(per-task baselines and best latencies, options, versions) are in `provenance.json`.", ""]
    for run in runs:
        t = run.get("target", {})
        ver = run.get("versions", {})
        tasks = run.get("tasks", [])
        lines += [f"## {run.get('date', '?')}: {run.get('model', '?')}", "",
                  "```bash", run.get("command", "?"), "```", "",
                  f"- CPU: {run.get('cpu', '?')} ({t.get('mcpu', t.get('arch', '?'))}), "
                  f"{run.get('threads', '?')} threads",
                  f"- {len(tasks)} tasks, {run.get('trials_per_task', '?')} trials per task, "
                  f"{run.get('trials_run', '?')} trials measured in {run.get('seconds', '?')} s"
                  + (" (interrupted)" if run.get("interrupted") else ""),
                  f"- dlc {ver.get('dlc', '?')} ({ver.get('dlc_commit') or 'no git commit'}), "
                  f"TVM {ver.get('tvm', '?')}, tvm-ffi {ver.get('tvm_ffi', '?')}, xgboost {ver.get('xgboost', '?')}",
                  f"- model sha256: `{run.get('model_sha256') or '?'}`", ""]
    return "\n".join(lines)
