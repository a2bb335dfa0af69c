"""``dlc db stats|list|merge|prune|export``: look after tuning databases (roots of ``<target key>/`` folders)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DlcError, TuneError
from ..schedule.apply import _compute_blocks, _gflop, _shapes
from ..target import host_target, resolve_target, target_key
from . import provenance
from .database import (
    BASELINE_FILE,
    RECORD_FILE,
    WORKLOAD_FILE,
    StoredRecord,
    TuningDatabase,
    compact_json,
    key_folders,
    record_wins,
)


def _databases(root: str | os.PathLike, target: str | None = None) -> list[TuningDatabase]:
    root = Path(root)
    if not root.is_dir():
        raise DlcError("no such tuning database directory", where=str(root))
    want = target_key(resolve_target(target)) if target else None
    return [TuningDatabase(folder, key) for key, folder in key_folders(root) if want in (None, key)]


def stats(root: str | os.PathLike, target: str | None = None) -> list[dict]:
    here = target_key(host_target())
    out = []
    for db in _databases(root, target):
        runs = []
        if (db.folder / provenance.FILE).exists():
            try:
                runs = json.loads((db.folder / provenance.FILE).read_text())
            except (OSError, json.JSONDecodeError):
                runs = []
        valid = [r for r in db.records if r.valid]
        out.append({"key": db.key, "folder": str(db.folder), "this_machine": db.key == here,
                    "workloads": len(db.workloads), "records": len(db.records), "valid": len(valid),
                    "failed": len(db.records) - len(valid), "baselines": len(db.baselines),
                    "foreign_target": db.foreign,
                    "corrupt_lines": len(db.problems), "rehashed": db.rehashed, "runs": len(runs),
                    "last_run": runs[-1].get("date") if runs else None})
    return out


def list_workloads(root: str | os.PathLike, target: str | None = None) -> list[dict]:
    rows = []
    for db in _databases(root, target):
        for w in db.workloads:
            func = w.mod["main"]
            best = db.best(w)
            gflop = _gflop(func)
            base = db.baselines_of(w)[-1] if db.baselines_of(w) else None  # the latest rules' schedule
            rows.append({"key": db.key, "workload": w.index, "blocks": "+".join(_compute_blocks(func)),
                         "shapes": _shapes(func), "records": len(db.records_of(w)),
                         "best_us": best.mean_secs * 1e6 if best else None,
                         "gflops": gflop / best.mean_secs if best and gflop else None,
                         "baseline": base.rule if base else None,
                         "baseline_us": base.mean_secs * 1e6 if base and base.valid else None})
    return rows


def merge(sources: list[str | os.PathLike], dest: str | os.PathLike) -> dict[str, int]:
    """Copy every record of ``sources`` into ``dest`` (same target key folders), skipping duplicates."""
    added: dict[str, int] = {}
    for src in sources:
        for db in _databases(src):
            out = TuningDatabase(Path(dest) / db.key, db.key)
            if out.folder.resolve() == db.folder.resolve():
                continue
            seen = {(id(w), r.trace_text, tuple(r.run_secs)) for w in out.workloads for r in out.records_of(w)}
            seen |= {(id(w), b.trace_sha256, tuple(b.run_secs)) for w in out.workloads for b in out.baselines_of(w)}
            n = 0
            for w in db.workloads:
                recs, bases = db.records_of(w), db.baselines_of(w)
                if not recs and not bases:
                    continue
                entry = out.commit_workload(w.mod)
                for r in recs:
                    if (id(entry), r.trace_text, tuple(r.run_secs)) not in seen:
                        out.commit(entry, r.trace, r.run_secs, r.target, r.args_info)
                        n += 1
                for b in bases:
                    if (id(entry), b.trace_sha256, tuple(b.run_secs)) not in seen:
                        out.commit_baseline(entry, b.rule, b.trace_sha256, b.run_secs, b.target, b.versus)
            _merge_provenance(db.folder, out)
            added[db.key] = added.get(db.key, 0) + n
    return added


def _merge_provenance(src: Path, out: TuningDatabase) -> None:
    try:
        runs = json.loads((src / provenance.FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return
    have = []
    if (out.folder / provenance.FILE).exists():
        try:
            have = json.loads((out.folder / provenance.FILE).read_text())
        except (OSError, json.JSONDecodeError):
            have = []
    known = {(r.get("date"), r.get("command")) for r in have}
    for run in runs:
        if (run.get("date"), run.get("command")) not in known:
            provenance.append(out.folder, out.key, run)


def _keep(db: TuningDatabase, top: int, faster_only: bool = False) -> list[StoredRecord]:
    keep: list[StoredRecord] = []
    for w in db.workloads:
        best = db.top_k(w, top)
        if faster_only and (not best or not record_wins(db, w, best[0])):
            continue  # the compile-time lookup would keep the rule's schedule (dlc/tune/lookup.py)
        keep += best
    return sorted(keep, key=lambda r: (r.workload.index, r.mean_secs))


def prune(root: str | os.PathLike, top: int, target: str | None = None) -> dict[str, int]:
    """Keep the ``top`` fastest valid records per workload (failed ones go); return how many were dropped."""
    if top < 1:
        raise DlcError(f"--top must be >= 1, got {top}")
    return {db.key: db.rewrite_records(_keep(db, top)) for db in _databases(root, target)}


def export(root: str | os.PathLike, out: str | os.PathLike, top: int = 1, target: str | None = None, *,
           faster_only: bool = False) -> list[Path]:
    """A clean copy in TVM's format: the ``top`` best records per workload, only workloads that have one
    (with ``faster_only``, one faster than every timing of its untuned schedule), numbered afresh, hashes
    computed on this machine, baselines and provenance beside. ``out/<key>`` must not exist."""
    written = []
    for db in _databases(root, target):
        dest = Path(out) / db.key
        if dest.exists():
            raise TuneError("export destination exists; choose an empty directory", where=str(dest))
        keep = _keep(db, top, faster_only)
        order = sorted({r.workload.index: r.workload for r in keep}.values(), key=lambda w: w.index)
        renumber = {w.index: i for i, w in enumerate(order)}
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{db.key}.", dir=dest.parent))
        try:
            (tmp / WORKLOAD_FILE).write_text("".join(compact_json(w.workload.as_json()) + "\n" for w in order))
            (tmp / RECORD_FILE).write_text("".join(
                compact_json([renumber[r.workload.index], [r.trace, r.run_secs, r.target, r.args_info]]) + "\n"
                for r in keep))
            (tmp / BASELINE_FILE).write_text("".join(
                compact_json([renumber[w.index], json.loads(b.line())[1]]) + "\n" for w in order for b in db.baselines_of(w)))
            for name in (provenance.FILE, provenance.MARKDOWN):
                if (db.folder / name).exists():
                    shutil.copy2(db.folder / name, tmp / name)
            os.rename(tmp, dest)  # all or nothing
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        written.append(dest)
    return written
