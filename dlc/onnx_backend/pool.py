"""Run conformance cases in worker processes, so that a case that crashes or hangs costs only itself.

TVM can abort the whole process (a failed ``ICHECK`` calls ``abort``), and a bad schedule can loop for minutes.
Each worker is a spawned Python process that imports dlc once and then runs many cases, one at a time; the
parent waits on all of them at once. When a worker dies mid-case the case is a ``crash`` (with the last line the
worker wrote to stderr as the reason) and a fresh worker takes its place; when a case runs past the timeout its
worker is killed and the case is a ``timeout``. Workers are also recycled every ``max_cases`` cases, which
bounds what a leak in one case can do to the next.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from .cases import Case
from .run import CaseResult, run_case

STATUSES = ("pass", "fail", "error", "crash", "timeout")


def _worker_main(conn: Connection, log_path: str, runner: Callable[[Case], CaseResult] = run_case) -> None:
    # stdout/stderr of the worker (TVM's C++ logs included) go to a file the parent reads after a crash.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import dlc  # noqa: F401  (pay the import once, before the first case's clock starts)

    conn.send("ready")
    while True:
        try:
            case = conn.recv()
        except EOFError:
            return
        if case is None:
            return
        conn.send(runner(case))


@dataclass
class _Slot:
    proc: mp.process.BaseProcess | None = None
    conn: Connection | None = None
    log_path: str = ""
    ready: bool = False
    case: Case | None = None
    started: float = 0.0
    log_offset: int = 0
    done: int = 0


@dataclass
class WorkerPool:
    jobs: int = 2
    timeout: float = 300.0
    max_cases: int = 200  # per worker, then a fresh one
    # Whole-network cases compile hundreds of kernels: they get this many timeouts' worth of time.
    slow_categories: tuple[str, ...] = ("light",)
    slow_factor: float = 4.0
    runner: Callable[[Case], CaseResult] = run_case  # a module-level function (workers import it by name)
    _ctx: mp.context.BaseContext = field(default_factory=lambda: mp.get_context("spawn"))
    _tmp: tempfile.TemporaryDirectory | None = None

    def _limit(self, case: Case) -> float:
        return self.timeout * (self.slow_factor if case.category in self.slow_categories else 1.0)

    def _start(self, slot: _Slot, index: int) -> None:
        parent, child = self._ctx.Pipe()
        slot.log_path = os.path.join(self._tmp.name, f"worker{index}.log")
        open(slot.log_path, "w").close()
        proc = self._ctx.Process(target=_worker_main, args=(child, slot.log_path, self.runner), daemon=True)
        try:
            proc.start()
        finally:
            child.close()
        slot.proc = proc
        slot.conn, slot.ready, slot.case, slot.done = parent, False, None, 0

    def _stop(self, slot: _Slot, kill: bool) -> None:
        if slot.proc is None:
            return
        if kill and slot.proc.is_alive():
            os.kill(slot.proc.pid, signal.SIGKILL)
        elif slot.proc.is_alive():
            try:
                slot.conn.send(None)
            except OSError:
                pass
        slot.proc.join(5)
        if slot.proc.is_alive():
            os.kill(slot.proc.pid, signal.SIGKILL)
            slot.proc.join()
        slot.conn.close()
        slot.proc = slot.conn = None

    def _crash_reason(self, slot: _Slot) -> str:
        code = slot.proc.exitcode if slot.proc is not None else None
        what = (f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}")
        try:
            with open(slot.log_path, "rb") as f:
                f.seek(slot.log_offset)
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        # A TVM abort prints "Check failed: ..." or "...Error: ..." before the stack: prefer that line.
        key = next((ln for ln in lines if "Check failed" in ln or "Error" in ln), lines[-1] if lines else "")
        return f"worker died ({what})" + (f": {key[:300]}" if key else "")

    def run(self, cases: Iterable[Case], on_result: Callable[[CaseResult], None] | None = None
            ) -> list[CaseResult]:
        pending = deque(cases)
        results: list[CaseResult] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="dlc-conformance-")
        slots = [_Slot() for _ in range(max(1, min(self.jobs, len(pending))))]

        def finish(slot: _Slot, res: CaseResult) -> None:
            results.append(res)
            slot.case = None
            slot.done += 1
            if on_result:
                on_result(res)

        try:
            while pending or any(s.case is not None for s in slots):
                for i, slot in enumerate(slots):
                    if slot.proc is None and pending:
                        self._start(slot, i)
                    if slot.ready and slot.case is None and pending:
                        if slot.done >= self.max_cases:
                            self._stop(slot, kill=False)
                            self._start(slot, i)
                            continue
                        slot.case = pending.popleft()
                        slot.started = time.monotonic()
                        slot.log_offset = os.path.getsize(slot.log_path)
                        slot.conn.send(slot.case)
                live = [s for s in slots if s.proc is not None]
                if not live:
                    break
                now = time.monotonic()
                waits = [s.started + self._limit(s.case) - now for s in live if s.case is not None]
                ready = wait([s.conn for s in live] + [s.proc.sentinel for s in live],
                             timeout=max(0.05, min(waits)) if waits else None)
                for slot in live:
                    if slot.conn in ready:
                        try:
                            msg = slot.conn.recv()
                        except (EOFError, OSError):
                            msg = None
                        if msg == "ready":
                            slot.ready = True
                            continue
                        if isinstance(msg, CaseResult):
                            finish(slot, msg)
                            continue
                    if slot.proc.sentinel in ready or (slot.conn in ready and not slot.proc.is_alive()):
                        slot.proc.join(1)
                        if slot.case is not None:
                            finish(slot, CaseResult.of(slot.case, "crash", self._crash_reason(slot),
                                                       time.monotonic() - slot.started))
                        elif not slot.ready:  # died while importing dlc: nothing else will work either
                            raise RuntimeError(f"conformance worker failed to start: {self._crash_reason(slot)}")
                        self._stop(slot, kill=True)
                        continue
                    if slot.case is not None and time.monotonic() - slot.started > self._limit(slot.case):
                        case, elapsed = slot.case, time.monotonic() - slot.started
                        self._stop(slot, kill=True)
                        finish(slot, CaseResult.of(case, "timeout", f"no result after {elapsed:.0f} s", elapsed))
        finally:
            for slot in slots:
                self._stop(slot, kill=slot.case is not None)
            self._tmp.cleanup()
        return results
