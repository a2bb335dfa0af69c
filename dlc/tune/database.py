"""The tuning database: MetaSchedule's JSON files, one folder per target key, safe to kill and to share.

Layout: ``ROOT/<target key>/`` (``dlc.target.target_key``) holds ``database_workload.json`` and
``database_tuning_record.json`` in TVM's own JSONDatabase format (one JSON value per line; a record line is
``[workload line index, [trace, run_secs, target, args_info]]``), so TVM's tools read them too, plus
``dlc_baselines.json`` (how fast each kernel's untuned schedule ran: ``[workload line index, {rule,
trace_sha256, run_secs, target}]`` per line), ``provenance.json`` (who tuned what, how) and ``.dlc.lock``.

Baselines live beside the records, not among them: a hand-written schedule's trace need not be one that
MetaSchedule's JSON can hold (``transform_layout`` carries an ``IndexMap`` its serializer rejects), and it is
never replayed: the compile runs the rule again and identifies "the same schedule" by the SHA-256 of its
printed trace.

What dlc adds over TVM's ``JSONDatabase``, and why:

* **Target-aware.** TVM's ``GetTopK`` ignores the target, so records of one machine get applied on another
  (apache/tvm#15549). Here a folder holds one target key only, and on load every record's own target must
  map to that key; records of other targets are counted and ignored.
* **Hashes recomputed.** Structural hashes are platform-dependent (apache/tvm#14188), so a hash stored on
  one machine need not be the one this machine computes for the same workload. The loader rehashes every
  workload from its module here and matches by structure; the stored hash is written (TVM's format has it)
  but never used. What must hold for shipped records is structural *equality*: they apply only to kernels
  that today's pipeline produces identically (``--explain`` shows which kernels got a record).
* **Never loses a finished record.** A record is one ``write()`` of a whole line on an ``O_APPEND`` file, then
  ``fsync``: a writer killed at any moment leaves at worst a torn last line. The workload file is append-only,
  so record indexes into it stay valid forever; rewrites (``prune``) replace only the record file, through a
  temp file and ``rename``.
* **Shared.** Writers take ``.dlc.lock`` (``filelock``) and re-read what others appended before they resolve a
  workload's line index, so two tuners on one database keep all records. Readers need no lock.
* **Tolerant.** A corrupt or torn line is skipped with a warning naming file and line; the rest loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import filelock
import tvm
import tvm_ffi
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from ..errors import TuneError
from ..target import target_key

log = logging.getLogger("dlc.tune")

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
BASELINE_FILE = "dlc_baselines.json"
LOCK_FILE = ".dlc.lock"
FAILED_SECS = 1e9  # MetaSchedule stores 1e10 s for candidates that failed to build or run


def compact_json(value) -> str:
    return json.dumps(value, separators=(",", ":"))  # TVM writes compact JSON; keep the files alike


_key_cache: dict[str, str | None] = {}


def record_target_key(target_json: dict) -> str | None:
    """The target key of a record's target (None if the target does not parse)."""
    text = compact_json(target_json)
    if text not in _key_cache:
        try:
            _key_cache[text] = target_key(Target(target_json))
        except Exception:
            _key_cache[text] = None
    return _key_cache[text]


@dataclass
class StoredWorkload:
    index: int  # line index in the workload file: what record lines refer to
    workload: ms.database.Workload  # hash recomputed on this machine
    stored_hash: str

    @property
    def mod(self) -> tvm.IRModule:
        return self.workload.mod


@dataclass
class StoredRecord:
    workload: StoredWorkload
    trace: list
    run_secs: list[float]
    target: dict
    args_info: list
    _tvm: ms.database.TuningRecord | None = field(default=None, repr=False)

    @property
    def valid(self) -> bool:
        return bool(self.run_secs) and max(self.run_secs) < FAILED_SECS

    @property
    def mean_secs(self) -> float:
        return sum(self.run_secs) / len(self.run_secs) if self.valid else float("inf")

    @property
    def trace_text(self) -> str:
        return compact_json(self.trace)

    def line(self) -> str:
        return compact_json([self.workload.index, [self.trace, self.run_secs, self.target, self.args_info]])

    def to_tvm(self) -> ms.database.TuningRecord:
        if self._tvm is None:
            self._tvm = ms.database.TuningRecord.from_json(
                [self.trace, self.run_secs, self.target, self.args_info], self.workload.workload)
        return self._tvm

    def schedule(self) -> s_tir.Schedule:
        """The record's schedule: its trace (postprocessing included) replayed on its workload."""
        sch = s_tir.Schedule(self.workload.mod)
        self.to_tvm().trace.apply_to_schedule(sch, remove_postproc=False)
        return sch


@dataclass
class Baseline:
    """How fast a kernel ran with the schedule it gets without tuning (a user/hand/fallback rule)."""

    workload: StoredWorkload
    rule: str
    trace_sha256: str
    run_secs: list[float]
    target: dict
    # Timed side by side with a record: {"record_sha256": sha256 of its trace text, "run_secs": [...]}, one
    # sample each per round, alternating (``Tuner.confirm``, ``dlc db verify``). The latest such line decides
    # whether that record applies (``paired_verdict``).
    versus: dict | None = None

    valid = StoredRecord.valid
    mean_secs = StoredRecord.mean_secs

    def line(self) -> str:
        fields = {"rule": self.rule, "trace_sha256": self.trace_sha256, "run_secs": self.run_secs,
                  "target": self.target}
        if self.versus is not None:
            fields["versus"] = self.versus
        return compact_json([self.workload.index, fields])


def record_sha256(record: StoredRecord) -> str:
    return hashlib.sha256(record.trace_text.encode()).hexdigest()


# A record must run this much faster than the untuned schedule, side by side, to replace it: the two fastest
# rounds of one schedule differ by up to ~2% on a quiet host, and a tie is no reason to replace a rule.
PAIRED_MARGIN = 0.02


def paired_verdict(db: TuningDatabase, entry: StoredWorkload, record: StoredRecord,
                   fingerprint: str | None = None) -> bool | None:
    """Whether ``record`` beat the untuned schedule (of ``fingerprint``, or any measured one) when the two were
    timed side by side (a baseline line whose ``versus`` is this record); None if they never were.

    Each is judged by its fastest round: a shared host's load only adds time, and it changes between
    rounds (on this project's machines one kernel ran at 63 us and at 123 us seconds apart, whichever
    schedule), so medians over a run that changed state mid-way decide by the noise. The record wins by at
    least ``PAIRED_MARGIN``."""
    sha = record_sha256(record)
    paired = [b for b in db.baselines_of(entry) if b.valid and b.versus and b.versus["record_sha256"] == sha
              and (fingerprint is None or b.trace_sha256 == fingerprint)]
    if not paired:
        return None
    return min(paired[-1].versus["run_secs"]) * (1 + PAIRED_MARGIN) < min(paired[-1].run_secs)


def record_wins(db: TuningDatabase, entry: StoredWorkload, record: StoredRecord,
                fingerprint: str | None = None) -> bool:
    """Whether ``record`` should replace the untuned schedule: side by side if they were timed so
    (``paired_verdict``), else the record's time must beat every timing of the untuned schedule."""
    verdict = paired_verdict(db, entry, record, fingerprint)
    if verdict is not None:
        return verdict
    bases = [b for b in db.baselines_of(entry) if b.valid and (fingerprint is None or b.trace_sha256 == fingerprint)]
    return record.mean_secs < min((b.mean_secs for b in bases), default=float("inf"))


@dataclass
class _FileCursor:
    """How far a file has been read: inode (a rename starts over), byte offset, complete lines seen."""

    inode: int = -1
    offset: int = 0
    lines: int = 0
    torn_tail: bool = False  # bytes after the last newline: a writer died mid-line (or is writing now)


def _read_new_lines(path: Path, cursor: _FileCursor) -> tuple[list[tuple[int, str]], bool]:
    """(line index, text) of the complete lines appended since ``cursor``; True if the file was replaced."""
    try:
        st = path.stat()
    except FileNotFoundError:
        replaced = cursor.inode != -1
        cursor.__init__()
        return [], replaced
    replaced = cursor.inode not in (-1, st.st_ino) or st.st_size < cursor.offset
    if replaced:
        cursor.__init__()
    cursor.inode = st.st_ino
    with open(path, "rb") as f:
        f.seek(cursor.offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # only whole lines; a tail without newline is torn or still being written
    out = []
    for raw in data[:end].split(b"\n")[:-1]:
        out.append((cursor.lines, raw.decode("utf-8", errors="replace")))
        cursor.lines += 1
    cursor.offset += end
    cursor.torn_tail = end < len(data)
    return out, replaced


def _append_line(path: Path, text: str) -> None:
    """Append one line durably (one write, then fsync). The caller holds the lock."""
    data = text.encode() + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a killed writer left a torn line: it stays one (skipped) line of its own
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text``: readers see the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; these files are shared and shipped
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)


class _FolderLock:
    """The writers' lock of a database folder (``.dlc.lock``); re-entrant within a process."""

    def __init__(self, folder: Path, timeout: float):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.timeout = folder, timeout
        self.lock = filelock.FileLock(str(folder / LOCK_FILE), timeout=timeout)

    def __enter__(self):
        try:
            self.lock.acquire()
        except filelock.Timeout:
            raise TuneError(f"the tuning database is locked by another process for over {self.timeout:.0f}s",
                            where=str(self.folder)) from None
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()


def folder_lock(folder: str | os.PathLike, timeout: float = 120.0) -> _FolderLock:
    return _FolderLock(Path(folder), timeout)


class TuningDatabase:
    """The records of one target key in one folder (``ROOT/<key>``): load, look up, append, rewrite."""

    def __init__(self, folder: str | os.PathLike, key: str, *, lock_timeout: float = 120.0):
        self.folder = Path(folder)
        self.key = key
        self.lock_timeout = lock_timeout
        self.workloads: list[StoredWorkload] = []
        self.records: list[StoredRecord] = []
        self.baselines: list[Baseline] = []
        self.problems: list[str] = []  # corrupt lines, skipped (also logged as warnings)
        self.foreign = 0  # records whose target has another key: never applied here
        self.rehashed = 0  # workloads whose stored hash differs from this machine's (see module doc)
        self._by_index: dict[int, StoredWorkload] = {}
        self._by_hash: dict[int, list[StoredWorkload]] = {}
        self._by_workload: dict[int, list[StoredRecord]] = {}
        self._baselines_of: dict[int, list[Baseline]] = {}
        self._wcur, self._rcur, self._bcur = _FileCursor(), _FileCursor(), _FileCursor()
        self._lock: _FolderLock | None = None
        self.refresh()

    # ---- opening ----------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike, target: Target, *, create: bool = False) -> TuningDatabase:
        """The database for ``target`` under ``root``: ``root/<key>`` (or ``root`` if it is that key's folder)."""
        root, key = Path(root), target_key(target)
        folder = root if root.name == key else root / key
        if create:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise TuneError(f"cannot create the tuning database: {e.strerror}", where=str(folder)) from None
        return cls(folder, key)

    @property
    def workload_path(self) -> Path:
        return self.folder / WORKLOAD_FILE

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD_FILE

    @property
    def baseline_path(self) -> Path:
        return self.folder / BASELINE_FILE

    def _locked(self):
        if self._lock is None:
            self._lock = folder_lock(self.folder, self.lock_timeout)
        return self._lock

    # ---- reading ----------------------------------------------------------------------------------------
    def _problem(self, path: Path, index: int, why: str) -> None:
        msg = f"{path}:{index + 1}: skipped a corrupt line ({why})"
        self.problems.append(msg)
        log.warning("%s", msg)

    def refresh(self) -> None:
        """Read what was appended since the last read (by anyone); start over if a file was replaced."""
        new_w, replaced_w = _read_new_lines(self.workload_path, self._wcur)
        if replaced_w:  # workload indexes changed under us: everything is re-read
            self.workloads, self.records, self.baselines, self.problems = [], [], [], []
            self.foreign = self.rehashed = 0
            self._by_index, self._by_hash, self._by_workload, self._baselines_of = {}, {}, {}, {}
            self._rcur, self._bcur = _FileCursor(), _FileCursor()
        for index, text in new_w:
            self._add_workload_line(index, text)
        new_r, replaced_r = _read_new_lines(self.record_path, self._rcur)
        if replaced_r:
            self.records, self._by_workload, self.foreign = [], {}, 0
            self.problems = [p for p in self.problems if RECORD_FILE not in p]
        for index, text in new_r:
            self._add_record_line(index, text)
        new_b, replaced_b = _read_new_lines(self.baseline_path, self._bcur)
        if replaced_b:
            self.baselines, self._baselines_of = [], {}
            self.problems = [p for p in self.problems if BASELINE_FILE not in p]
        for index, text in new_b:
            self._add_baseline_line(index, text)

    def _add_workload_line(self, index: int, text: str) -> None:
        try:
            obj = json.loads(text)
            if not (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj)):
                raise ValueError("not [hash, module]")
            stored = ms.database.Workload.from_json(obj)
            workload = ms.database.Workload(stored.mod)  # this machine's hash, not the stored one
        except Exception as e:
            self._problem(self.workload_path, index, _why(e))
            return
        entry = StoredWorkload(index, workload, obj[0])
        if workload.as_json()[0] != obj[0]:
            self.rehashed += 1
        self._by_index[index] = entry
        self._by_hash.setdefault(tvm_ffi.structural_hash(entry.mod), []).append(entry)
        self.workloads.append(entry)

    def _add_record_line(self, index: int, text: str) -> None:
        try:
            obj = json.loads(text)
            widx, (trace, run_secs, target, args_info) = obj
            if not isinstance(widx, int) or widx not in self._by_index:
                raise ValueError(f"workload {widx} is not a loaded workload")
            if not (isinstance(trace, list) and isinstance(run_secs, list) and isinstance(target, dict)
                    and all(isinstance(s, (int, float)) for s in run_secs)):
                raise ValueError("not [trace, run_secs, target, args_info]")
        except Exception as e:
            self._problem(self.record_path, index, _why(e))
            return
        if record_target_key(target) != self.key:
            self.foreign += 1
            return
        rec = StoredRecord(self._by_index[widx], trace, [float(s) for s in run_secs], target, args_info)
        self.records.append(rec)
        self._by_workload.setdefault(widx, []).append(rec)

    def _add_baseline_line(self, index: int, text: str) -> None:
        try:
            widx, fields = json.loads(text)
            if not isinstance(widx, int) or widx not in self._by_index:
                raise ValueError(f"workload {widx} is not a loaded workload")
            versus = fields.get("versus")
            if versus is not None:
                versus = {"record_sha256": str(versus["record_sha256"]),
                          "run_secs": [float(x) for x in versus["run_secs"]]}
            b = Baseline(self._by_index[widx], str(fields["rule"]), str(fields["trace_sha256"]),
                         [float(x) for x in fields["run_secs"]], dict(fields["target"]), versus)
        except Exception as e:
            self._problem(self.baseline_path, index, _why(e))
            return
        if record_target_key(b.target) == self.key:
            self.baselines.append(b)
            self._baselines_of.setdefault(widx, []).append(b)

    # ---- lookup -----------------------------------------------------------------------------------------
    def find(self, mod: tvm.IRModule) -> StoredWorkload | None:
        for entry in self._by_hash.get(tvm_ffi.structural_hash(mod), []):
            if tvm_ffi.structural_equal(entry.mod, mod):
                return entry
        return None

    def find_workload(self, workload: ms.database.Workload) -> StoredWorkload | None:
        for entry in self.workloads:
            if entry.workload.same_as(workload):
                return entry
        return self.find(workload.mod)

    def records_of(self, entry: StoredWorkload) -> list[StoredRecord]:
        return self._by_workload.get(entry.index, [])

    def top_k(self, entry: StoredWorkload, k: int) -> list[StoredRecord]:
        return sorted((r for r in self.records_of(entry) if r.valid), key=lambda r: r.mean_secs)[:k]

    def best(self, entry: StoredWorkload) -> StoredRecord | None:
        top = self.top_k(entry, 1)
        return top[0] if top else None

    def baselines_of(self, entry: StoredWorkload) -> list[Baseline]:
        return self._baselines_of.get(entry.index, [])

    def baseline_secs(self, entry: StoredWorkload, trace_sha256: str) -> float | None:
        """The fastest measurement of this exact untuned schedule (None if never measured)."""
        times = [b.mean_secs for b in self.baselines_of(entry) if b.trace_sha256 == trace_sha256 and b.valid]
        return min(times, default=None)

    # ---- writing ----------------------------------------------------------------------------------------
    def commit_workload(self, mod: tvm.IRModule) -> StoredWorkload:
        """The stored workload for ``mod``, appended to the file if nobody has stored it yet."""
        entry = self.find(mod)
        if entry is not None:
            return entry
        with self._locked():
            self.refresh()  # another writer may have added it, and the line index must be the file's
            entry = self.find(mod)
            if entry is None:
                workload = ms.database.Workload(mod)
                _append_line(self.workload_path, compact_json(workload.as_json()))
                new = _read_new_lines(self.workload_path, self._wcur)[0]  # ours is the last; a torn one before
                for index, text in new[:-1]:
                    self._add_workload_line(index, text)
                entry = StoredWorkload(new[-1][0], workload, workload.as_json()[0])
                index = entry.index
                self._by_index[index] = entry
                self._by_hash.setdefault(tvm_ffi.structural_hash(mod), []).append(entry)
                self.workloads.append(entry)
        return entry

    def commit(self, entry: StoredWorkload, trace: list, run_secs: list[float], target: dict,
               args_info: list) -> StoredRecord:
        """Append one record durably (it is on disk when this returns)."""
        with self._locked():
            self.refresh()
            rec = StoredRecord(entry, trace, [float(s) for s in run_secs], target, args_info)
            _append_line(self.record_path, rec.line())
            self._consume_own_record_line()
            if record_target_key(target) == self.key:
                self.records.append(rec)
                self._by_workload.setdefault(entry.index, []).append(rec)
            else:
                self.foreign += 1
        return rec

    def commit_baseline(self, entry: StoredWorkload, rule: str, trace_sha256: str, run_secs: list[float],
                        target: dict, versus: dict | None = None) -> Baseline:
        with self._locked():
            self.refresh()
            b = Baseline(entry, rule, trace_sha256, [float(x) for x in run_secs], target, versus)
            _append_line(self.baseline_path, b.line())
            for index, text in _read_new_lines(self.baseline_path, self._bcur)[0][:-1]:
                self._add_baseline_line(index, text)  # a torn line before ours
            if record_target_key(target) == self.key:
                self.baselines.append(b)
                self._baselines_of.setdefault(entry.index, []).append(b)
        return b

    def _consume_own_record_line(self) -> None:
        for index, text in _read_new_lines(self.record_path, self._rcur)[0][:-1]:
            self._add_record_line(index, text)  # a torn line before ours (we hold the lock: nothing else)

    def commit_tvm_record(self, record: ms.database.TuningRecord) -> StoredRecord:
        entry = self.commit_workload(record.workload.mod)
        trace, run_secs, target, args_info = record.as_json()
        return self.commit(entry, trace, run_secs, target, args_info)

    def rewrite_records(self, keep: Iterable[StoredRecord]) -> int:
        """Replace the record file by ``keep`` (atomically); return how many records were dropped."""
        with self._locked():
            self.refresh()
            kept = list(keep)
            ids = {id(r) for r in self.records}
            if any(id(r) not in ids for r in kept):
                raise TuneError("rewrite_records: records must come from this database", where=str(self.folder))
            write_atomic(self.record_path, "".join(r.line() + "\n" for r in kept))
            dropped = len(self.records) - len(kept)
            self._rcur = _FileCursor()
            self.records, self._by_workload, self.foreign = [], {}, 0
            self.problems = [p for p in self.problems if RECORD_FILE not in p]
            self.refresh()
        return dropped

    def __len__(self) -> int:
        return len(self.records)


def _why(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:120]}" if text else type(e).__name__


def key_folders(root: str | os.PathLike) -> Iterator[tuple[str, Path]]:
    """(target key, folder) of every database under ``root`` (``root`` itself if it holds the files)."""
    root = Path(root)
    if (root / WORKLOAD_FILE).exists():
        yield root.name, root
        return
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if (sub / WORKLOAD_FILE).exists():
                yield sub.name, sub


@tvm.ir.utils.derived_object
class MetaScheduleDatabase(ms.database.PyDatabase):
    """A ``TuningDatabase`` as MetaSchedule's ``Database``: every record it commits is on disk at once."""

    def __init__(self, db: TuningDatabase):
        super().__init__()
        self.db = db

    def has_workload(self, mod: tvm.IRModule) -> bool:
        return self.db.find(mod) is not None

    def commit_workload(self, mod: tvm.IRModule) -> ms.database.Workload:
        return self.db.commit_workload(mod).workload

    def commit_tuning_record(self, record: ms.database.TuningRecord) -> None:
        self.db.commit_tvm_record(record)

    def get_top_k(self, workload: ms.database.Workload, top_k: int) -> list[ms.database.TuningRecord]:
        entry = self.db.find_workload(workload)
        return [r.to_tvm() for r in self.db.top_k(entry, top_k)] if entry is not None else []

    def get_all_tuning_records(self) -> list[ms.database.TuningRecord]:
        return [r.to_tvm() for r in self.db.records]

    def __len__(self) -> int:
        return len(self.db.records)
