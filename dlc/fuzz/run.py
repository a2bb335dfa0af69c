"""Run fuzz cases through a pool of worker processes and classify how each command ended.

Per case: ``dlc inspect MODEL`` (sometimes ``--json``), then ``dlc compile MODEL -o OUT.so -q [flags]``,
then, if that wrote an artifact, ``dlc inspect OUT.so`` (and with ``run_artifacts``, ``dlc run OUT.so`` on
random inputs). Each command ends as one of

* ``ok``         exit 0 (or ``inspect``'s exit 1 listing unsupported ops, which is a report, not an error);
* ``error``      a ``DlcError``: exit 1-3, exactly one ``dlc: error: ...`` line on stderr, nothing else;
* ``unclean``    a ``DlcError``, but stderr has more than that one line (TVM's C++ chatter, warnings);
* ``internal``   an exception that is not a ``DlcError`` reached the CLI (exit 70): a dlc bug;
* ``traceback``  a Python traceback was printed;
* ``crash``      the worker died (signal, abort, ``os._exit``); it is replaced and the run goes on;
* ``hang``       no answer within the timeout; the worker is killed and replaced.

Everything but ``ok`` and ``error`` is a failure. Successful commands whose stderr carries extra lines
(TVM warnings) are ``ok`` but counted as ``noisy``.
"""

from __future__ import annotations

import collections
import multiprocessing
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from .mutate import Case, make_case
from .worker import worker_main

FAILURES = ("unclean", "internal", "traceback", "crash", "hang")
EXIT_INTERNAL = 70


@dataclass
class CommandResult:
    name: str  # inspect, compile, inspect-artifact, run
    argv: list[str]
    outcome: str
    exit_code: int | None = None
    error_class: str | None = None
    message: str = ""  # the one error line, or what went wrong
    seconds: float = 0.0
    noisy: bool = False

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if v not in (None, "", False) or k == "outcome"}
        d["seconds"] = round(self.seconds, 3)
        d.pop("argv", None)
        return d


@dataclass
class CaseResult:
    case: Case
    commands: list[CommandResult] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        order = ("ok", "error", *FAILURES)
        return max((c.outcome for c in self.commands), key=order.index, default="ok")

    def to_json(self) -> dict:
        return {"index": self.case.index, "seed_model": self.case.seed_model, "mutations": self.case.mutations,
                "outcome": self.outcome, "commands": [c.to_json() for c in self.commands]}


def _stderr_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def classify(name: str, code: int, exc_class: str | None, stdout: str, stderr: str) -> tuple[str, str, bool]:
    """(outcome, message, noisy) of one finished command."""
    lines = _stderr_lines(stderr)
    if "Traceback (most recent call last)" in stdout + stderr:
        return "traceback", next((ln for ln in reversed(lines) if ln.strip()), ""), False
    if code == 0:
        expected = 1 if name == "compile" else 0  # compile says "compiled X for T in Ns -> OUT"
        return "ok", "", len(lines) > expected or (name == "compile" and bool(stdout.strip()))
    if name == "inspect" and code == 1 and exc_class is None and not lines:
        return "ok", "unsupported operators listed", False
    if code == EXIT_INTERNAL:
        return "internal", lines[-1] if lines else f"exit {code}", False
    errors = [ln for ln in lines if ln.startswith("dlc: error: ")]
    if code in (1, 2, 3) and len(errors) == 1:
        return ("error" if len(lines) == 1 else "unclean"), errors[0][len("dlc: error: "):], False
    return "unclean", (lines[-1] if lines else f"exit {code} with nothing on stderr"), False


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit {exitcode}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_words(path: Path, lines: int = 14) -> str:
    """What a dead worker printed last: Python's fault handler stack if there is one, else the tail."""
    text = _read(path).splitlines()
    start = next((i for i, ln in enumerate(text) if ln.startswith("Fatal Python error")), None)
    return "\n".join(text[start:start + lines] if start is not None else text[-lines:])


class _Slot:
    """One worker process and the case it is working on."""

    def __init__(self, ctx, target: Callable, niceness: int, memory_limit: int | None):
        self.ctx, self.target, self.niceness, self.memory_limit = ctx, target, niceness, memory_limit
        self.proc = None
        self.conn = None
        self.served = 0
        self.start()
        self.result: CaseResult | None = None
        self.dir: Path | None = None
        self.pending: list[tuple[str, list[str]]] = []
        self.current: tuple[str, list[str]] | None = None
        self.deadline = 0.0

    def start(self, startup_timeout: float = 600.0) -> None:
        """Start a worker and wait until it has imported dlc (the command timeout must not include that)."""
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=self.target, args=(child, self.niceness, self.memory_limit), daemon=True)
        self.proc.start()
        child.close()
        self.conn, self.served = parent, 0
        try:
            ready = parent.poll(startup_timeout) and parent.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise RuntimeError(f"a fuzz worker did not start ({_signal_name(self.proc.exitcode)}); "
                               "try: python -c 'import dlc.cli'")

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.kill()
        self.conn.close()


@dataclass
class FuzzRun:
    seed: int
    indices: list[int]
    workers: int = 2
    timeout: float = 90.0
    niceness: int = 10
    memory_limit_mb: int | None = 4096
    recycle_after: int = 150  # fresh workers now and then: leaks in one case must not fail a later one
    keep_dir: Path | None = None  # failing cases are copied here, with a README to reproduce them
    progress: Callable[[CaseResult], None] | None = None
    make_case: Callable[[int, int], Case] = make_case  # (seed, index) -> Case; tests substitute their own
    worker: Callable = worker_main  # the child's main function (importable: workers are spawned)
    run_artifacts: bool = False  # also `dlc run` each artifact on random inputs (not part of the compile fuzzing)
    results: list[CaseResult] = field(default_factory=list)

    def run(self) -> list[CaseResult]:
        ctx = multiprocessing.get_context("spawn")
        memory = self.memory_limit_mb * 2**20 if self.memory_limit_mb else None
        todo = collections.deque(self.indices)
        with tempfile.TemporaryDirectory(prefix="dlc-fuzz-") as tmp:
            slots = [_Slot(ctx, self.worker, self.niceness, memory) for _ in range(min(self.workers, len(todo)) or 1)]
            try:
                for slot in slots:
                    self._assign(slot, todo, Path(tmp))
                while any(s.result for s in slots):
                    self._step(slots, todo, Path(tmp))
            finally:
                for slot in slots:
                    slot.stop()
        self.results.sort(key=lambda r: r.case.index)
        return self.results

    # ---- scheduling ---------------------------------------------------------------------------------------
    def _assign(self, slot: _Slot, todo: collections.deque, tmp: Path) -> None:
        slot.result = None
        if not todo:
            return
        if slot.served >= self.recycle_after:
            slot.stop()
            slot.start()
        case = self.make_case(self.seed, todo.popleft())
        slot.dir = tmp / f"case{case.index}"
        slot.dir.mkdir()
        model = slot.dir / "model.onnx"
        model.write_bytes(case.model_bytes)
        for name, content in case.files.items():
            if isinstance(content, tuple):
                (slot.dir / name).symlink_to(content[1])
            else:
                (slot.dir / name).write_bytes(content)
        slot.result = CaseResult(case)
        slot.pending = [("inspect", ["inspect", str(model)] + (["--json"] if case.inspect_json else [])),
                        ("compile", ["compile", str(model), "-o", str(slot.dir / "out.so"), "-q",
                                     *case.compile_args])]
        slot.served += 1
        self._send_next(slot, tmp, todo)

    def _send_next(self, slot: _Slot, tmp: Path, todo: collections.deque) -> None:
        if not slot.pending:
            self._finish(slot, todo, tmp)
            return
        slot.current = slot.pending.pop(0)
        name, argv = slot.current
        slot.conn.send((argv, str(slot.dir / f"{name}.out"), str(slot.dir / f"{name}.err")))
        slot.deadline = time.monotonic() + self.timeout

    def _step(self, slots: list[_Slot], todo: collections.deque, tmp: Path) -> None:
        busy = [s for s in slots if s.result]
        now = time.monotonic()
        ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy],
                     timeout=max(0.0, min(s.deadline for s in busy) - now))
        for slot in busy:
            name, argv = slot.current
            if slot.conn in ready:
                try:
                    code, exc_class, exc_msg, secs = slot.conn.recv()
                except (EOFError, OSError):
                    ready.append(slot.proc.sentinel)  # died while answering
                else:
                    self._done(slot, name, argv, code, exc_class, secs)
                    self._send_next(slot, tmp, todo)
                    continue
            if slot.proc.sentinel in ready:
                slot.proc.join()
                detail = _signal_name(slot.proc.exitcode)
                tail = _last_words(slot.dir / f"{name}.err")
                slot.result.commands.append(CommandResult(name, argv, "crash", message=f"{detail}: {tail}"))
                slot.kill()
                slot.start()
                self._finish(slot, todo, tmp)
            elif time.monotonic() > slot.deadline:
                slot.kill()
                slot.result.commands.append(CommandResult(name, argv, "hang",
                                                          message=f"no answer in {self.timeout:.0f}s"))
                slot.start()
                self._finish(slot, todo, tmp)

    def _done(self, slot: _Slot, name: str, argv: list[str], code: int, exc_class: str | None, secs: float) -> None:
        out, err = (_read(slot.dir / f"{name}.{kind}") for kind in ("out", "err"))
        outcome, message, noisy = classify(name, code, exc_class, out, err)
        if noisy:
            message = " | ".join(_stderr_lines(out + err))[:400]
        slot.result.commands.append(CommandResult(name, argv, outcome, code, exc_class, message, secs, noisy))
        artifact = slot.dir / "out.so"
        if name == "compile" and code == 0 and artifact.exists():
            slot.pending.append(("inspect-artifact", ["inspect", str(artifact)]))
            if self.run_artifacts:
                slot.pending.append(("run", ["run", str(artifact), "--threads", "1",
                                             *_random_inputs(artifact, slot.dir, self.seed, slot.result.case.index)]))

    def _finish(self, slot: _Slot, todo: collections.deque, tmp: Path) -> None:
        result = slot.result
        self.results.append(result)
        if self.keep_dir is not None and result.outcome in FAILURES:
            self._keep(result, slot.dir)
        shutil.rmtree(slot.dir, ignore_errors=True)
        if self.progress:
            self.progress(result)
        self._assign(slot, todo, tmp)

    def _keep(self, result: CaseResult, case_dir: Path) -> None:
        dest = self.keep_dir / f"case{result.case.index}"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(case_dir, dest, symlinks=True, ignore=shutil.ignore_patterns("*.so"))
        bad = next(c for c in result.commands if c.outcome in FAILURES)
        (dest / "README.txt").write_text(
            f"case {result.case.index} of seed {self.seed} ({result.case.seed_model}): {bad.outcome} in {bad.name}\n"
            f"mutations: {result.case.mutations}\n{bad.message}\n\nreproduce:\n"
            f"  python -m dlc.fuzz --seed {self.seed} --only {result.case.index}\n"
            f"  dlc {' '.join(bad.argv)}\n")


def _random_inputs(artifact: Path, folder: Path, seed: int, index: int) -> list[str]:
    """``-i NAME=FILE.npy`` for every input of the artifact: random values of its dtype, symbolic dims 2.

    Integers are drawn from [-3, 8), so index inputs are sometimes out of range: that is on purpose.
    """
    import numpy as np

    from ..runtime.artifact import read_metadata  # imports TVM: only here, only with --run

    rng = np.random.default_rng([seed, index, 1])
    args = []
    for k, spec in enumerate(read_metadata(artifact)["signature"]["inputs"]):
        shape = tuple(d if isinstance(d, int) else 2 for d in spec["shape"])
        dtype = np.dtype(spec["dtype"])
        if dtype.kind == "f":
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, shape).astype(bool)
        else:
            value = rng.integers(-3 if dtype.kind == "i" else 0, 8, shape).astype(dtype)
        path = folder / f"input{k}.npy"
        np.save(path, value)
        args += ["-i", f"{spec['name']}={path}"]
    return args


# ---- summaries --------------------------------------------------------------------------------------------
def message_shape(message: str) -> str:
    """An error message with names and numbers blanked, so that similar errors group together."""
    s = re.sub(r"^\S+\.onnx: ", "", message)
    s = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", s)
    s = re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", s)
    return s[:140]


def summarize(results: Iterable[CaseResult]) -> dict:
    results = list(results)
    by_case = collections.Counter(r.outcome for r in results)
    by_command: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    classes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    shapes: collections.Counter = collections.Counter()
    noisy: collections.Counter = collections.Counter()
    for r in results:
        for c in r.commands:
            by_command[c.name][c.outcome] += 1
            if c.outcome in ("error", "unclean"):
                classes[c.name][c.error_class or "?"] += 1
                shapes[f"{c.name}: {c.error_class}: {message_shape(c.message)}"] += 1
            if c.noisy:
                noisy[message_shape(c.message)] += 1
    return {
        "cases": len(results),
        "case_outcomes": dict(by_case),
        "failures": sum(by_case[f] for f in FAILURES),
        "command_outcomes": {k: dict(v) for k, v in by_command.items()},
        "error_classes": {k: dict(v.most_common()) for k, v in classes.items()},
        "top_errors": dict(shapes.most_common(40)),
        "noisy_successes": dict(noisy.most_common(10)),
        "seed_models": dict(collections.Counter(r.case.seed_model for r in results).most_common()),
        "compiled": sum(any(c.name == "compile" and c.outcome == "ok" for c in r.commands) for r in results),
    }

