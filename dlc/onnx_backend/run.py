"""Run one conformance case in this process: compile with ``DlcBackend``, run every data set, compare.

Status: ``pass``; ``fail`` (ran, wrong numbers/shape/dtype); ``error`` (dlc raised: unsupported op, import,
compile or run error). ``crash`` and ``timeout`` are decided by the pool, which watches the process.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .cases import Case, load_case
from .compare import mismatch


@dataclass
class CaseResult:
    case: str
    category: str
    status: str
    reason: str
    seconds: float

    @classmethod
    def of(cls, case: Case, status: str, reason: str, seconds: float) -> CaseResult:
        return cls(case.name, case.category, status, _one_line(reason), round(seconds, 3))

    def to_json(self) -> dict:
        return asdict(self)


def _one_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(e: BaseException) -> str:
    import dlc

    name = type(e).__name__
    if isinstance(e, dlc.DlcError):
        return f"{name}: {_one_line(e.message or str(e))}"
    return f"internal {name}: {_one_line(str(e)) or repr(e)}"


def run_case(case: Case) -> CaseResult:
    from .backend import DlcBackend

    t0 = time.perf_counter()

    def result(status: str, reason: str = "") -> CaseResult:
        return CaseResult.of(case, status, reason, time.perf_counter() - t0)

    try:
        loaded = load_case(case)
    except Exception as e:  # the case's own data is unreadable: not dlc's fault, but say so
        return result("error", f"cannot read case data: {_describe(e)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = DlcBackend.prepare(loaded.model)
    except Exception as e:
        return result("error", _describe(e))
    for i, (inputs, expected) in enumerate(loaded.data_sets):
        try:
            with np.errstate(all="ignore"):
                outputs = list(rep.run(inputs))
        except Exception as e:
            return result("error", f"data set {i}: {_describe(e)}")
        msg = mismatch(outputs, expected, case.rtol, case.atol)
        if msg:
            return result("fail", f"data set {i}: {msg}" if len(loaded.data_sets) > 1 else msg)
    return result("pass")
