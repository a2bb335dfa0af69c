"""The ONNX backend conformance suite against dlc: run it, write the results, compare with the expected failures.

    python -m dlc.onnx_backend.suite --out results.json              # all 2033 cases, 2 workers
    python -m dlc.onnx_backend.suite -k gru -k lstm --category node  # a few
    python -m dlc.onnx_backend.suite --out results.json --write-expected   # refresh expected_failures.txt

Every case runs in a worker process (``pool.py``); the results JSON holds one row per case (case, category,
status, reason, seconds). The exit status is 1 when a case outside ``expected_failures.txt`` does not pass.
The full run is CPU-heavy: run it under ``nice``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .cases import CATEGORIES, Case, all_cases
from .pool import STATUSES, WorkerPool
from .run import CaseResult

EXPECTED_FAILURES = Path(__file__).with_name("expected_failures.txt")


def case_key(category: str, name: str) -> str:
    return f"{category}/{name}"


def read_expected(path: Path = EXPECTED_FAILURES) -> dict[str, str]:
    """``category/name`` -> reason, from lines ``category/name: reason`` (``#`` starts a comment)."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for ln in path.read_text().splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        key, _, reason = ln.partition(":")
        out[key.strip()] = reason.strip()
    return out


def write_expected(results: Sequence[CaseResult], path: Path = EXPECTED_FAILURES) -> None:
    """Every case that did not pass, one line each with its reason (hand-written reasons are kept)."""
    old = read_expected(path)
    rows = sorted((r for r in results if r.status != "pass"), key=lambda r: (r.category, r.case))
    keep = {k: v for k, v in old.items() if k.split("/", 1)[0] not in {r.category for r in results}}
    lines = ["# ONNX backend conformance cases dlc does not pass, one per line: category/name: reason.",
             "# Regenerate with `python -m dlc.onnx_backend.suite --out results.json --write-expected`;",
             "# reasons written by hand are kept while the case still fails.", ""]
    entries = dict(keep)
    for r in rows:
        key = case_key(r.category, r.case)
        reason = old.get(key) or f"{r.status}: {r.reason}"
        entries[key] = reason
    lines += [f"{k}: {v}" for k, v in sorted(entries.items())]
    path.write_text("\n".join(lines) + "\n")


def select(cases: Iterable[Case], patterns: Sequence[str]) -> list[Case]:
    if not patterns:
        return list(cases)
    rx = [re.compile(p) for p in patterns]
    return [c for c in cases if any(r.search(c.name) for r in rx)]


def table(results: Sequence[CaseResult]) -> list[list[str]]:
    """Rows: category, one count per status, total; last row the totals."""
    cats = [c for c in CATEGORIES if any(r.category == c for r in results)]
    rows = []
    for cat in [*cats, "total"]:
        counts = Counter(r.status for r in results if cat == "total" or r.category == cat)
        rows.append([cat, *(str(counts.get(s, 0)) for s in STATUSES), str(sum(counts.values()))])
    return rows


def print_table(results: Sequence[CaseResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="ONNX backend conformance: dlc")
    for col in ("category", *STATUSES, "total"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for row in table(results):
        t.add_row(*row)
    Console(stderr=True).print(t)


def reason_groups(results: Sequence[CaseResult]) -> Counter:
    """Failure reasons with numbers and quoted names blanked, counted: what to fix first."""
    c: Counter = Counter()
    for r in results:
        if r.status == "pass":
            continue
        text = re.sub(r"'[^']*'", "'…'", r.reason)
        text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
        c[f"{r.status}: {text[:140]}"] += 1
    return c


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlc.onnx_backend.suite", description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write the results JSON here")
    p.add_argument("--category", action="append", choices=CATEGORIES, help="only these categories; repeatable")
    p.add_argument("-k", dest="patterns", action="append", default=[], help="only cases whose name matches "
                   "this regex; repeatable")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per case before it counts as a timeout (light models get 4x)")
    p.add_argument("--expected", type=Path, default=EXPECTED_FAILURES, help="the expected-failures list")
    p.add_argument("--write-expected", action="store_true", help="rewrite the expected-failures list from "
                   "this run (only for the categories that ran)")
    p.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    args = p.parse_args(argv)

    t0 = time.time()
    cases = select(all_cases(args.category or CATEGORIES), args.patterns)
    print(f"{len(cases)} cases ({time.time() - t0:.0f} s to collect)", file=sys.stderr)
    expected = read_expected(args.expected)
    done = [0]

    def progress(r: CaseResult) -> None:
        done[0] += 1
        if not args.quiet:
            flag = "" if (r.status == "pass") == (case_key(r.category, r.case) not in expected) else "  [unexpected]"
            print(f"[{done[0]}/{len(cases)}] {r.status:7s} {r.category}/{r.case} {r.seconds:.1f}s "
                  f"{r.reason[:160]}{flag}", file=sys.stderr, flush=True)

    results = WorkerPool(jobs=args.jobs, timeout=args.timeout).run(cases, progress)
    results.sort(key=lambda r: (CATEGORIES.index(r.category), r.case))
    print_table(results)
    unexpected_fail = [r for r in results if r.status != "pass" and case_key(r.category, r.case) not in expected]
    unexpected_pass = [r for r in results if r.status == "pass" and case_key(r.category, r.case) in expected]
    for reason, n in reason_groups(results).most_common(25):
        print(f"{n:5d}  {reason}", file=sys.stderr)
    if args.out:
        from ..version import versions

        doc = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python -m dlc.onnx_backend.suite", *(argv or sys.argv[1:])]),
            "versions": versions(),
            "seconds": round(time.time() - t0, 1),
            "table": {row[0]: dict(zip((*STATUSES, "total"), map(int, row[1:]))) for row in table(results)},
            "unexpected_failures": [case_key(r.category, r.case) for r in unexpected_fail],
            "unexpected_passes": [case_key(r.category, r.case) for r in unexpected_pass],
            "cases": [r.to_json() for r in results],
        }
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    if args.write_expected:
        write_expected(results, args.expected)
    print(f"{sum(r.status == 'pass' for r in results)}/{len(results)} pass; {len(unexpected_fail)} unexpected "
          f"failures, {len(unexpected_pass)} unexpected passes", file=sys.stderr)
    return 1 if unexpected_fail else 0


if __name__ == "__main__":
    sys.exit(main())
