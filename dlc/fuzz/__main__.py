"""``python -m dlc.fuzz``: fuzz ``dlc inspect`` and ``dlc compile`` with mutated models; exit 1 on any failure.

    nice -n 10 python -m dlc.fuzz --cases 2000 --seed 1 --out fuzz-report.json --keep fuzz-failures/
    python -m dlc.fuzz --seed 1 --only 137 --keep case137/     # one case again, its files kept

The report (JSON) has the counts per outcome, per command and per error class, the most frequent error
messages, and one entry per case (its seed model, its mutations, how each command ended).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from .run import FAILURES, CaseResult, FuzzRun, summarize


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlc.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200, help="number of cases (default 200)")
    p.add_argument("--seed", type=int, default=1, help="run seed; case i of seed s is always the same model")
    p.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    p.add_argument("--only", type=int, action="append", metavar="I", help="run just case I (repeatable)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds per command before it is a hang")
    p.add_argument("--memory-limit-mb", type=int, default=4096, help="address-space limit per worker (0: none)")
    p.add_argument("--out", type=Path, help="write the JSON report here")
    p.add_argument("--keep", type=Path, metavar="DIR", help="copy failing cases here, with how to reproduce them")
    p.add_argument("--run", action="store_true",
                   help="also `dlc run` every artifact on random inputs (beyond compile/inspect fuzzing)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line per case")
    args = p.parse_args(argv)

    console = Console(stderr=True, highlight=False)
    indices = args.only or list(range(args.start, args.start + args.cases))
    done = [0]

    def progress(r: CaseResult) -> None:
        done[0] += 1
        if args.quiet and r.outcome not in FAILURES:
            if done[0] % 100 == 0:
                console.print(f"[dim]{done[0]:5}/{len(indices)} cases, {time.time() - t0:.0f}s[/]")
            return
        last = r.commands[-1] if r.commands else None
        what = f"{last.name}: {last.outcome}" + (f" ({last.error_class})" if last and last.error_class else "")
        style = "red" if r.outcome in FAILURES else "dim"
        console.print(f"[{style}]{done[0]:5}/{len(indices)} case {r.case.index:5} {r.case.seed_model:18} "
                      f"{what}[/]" + (f"\n      {r.commands[-1].message[:300]}" if r.outcome in FAILURES else ""))

    t0 = time.time()
    run = FuzzRun(args.seed, indices, workers=args.workers, timeout=args.timeout,
                  memory_limit_mb=args.memory_limit_mb or None, keep_dir=args.keep, progress=progress,
                  run_artifacts=args.run)
    results = run.run()
    summary = summarize(results)
    summary["seconds"] = round(time.time() - t0, 1)
    console.print_json(json.dumps({k: v for k, v in summary.items() if k != "top_errors"}))
    if args.out:
        report = {"command": "python -m dlc.fuzz " + shlex.join(sys.argv[1:] if argv is None else argv),
                  "seed": args.seed, "summary": summary, "cases": [r.to_json() for r in results]}
        args.out.write_text(json.dumps(report, indent=1))
        console.print(f"report: {args.out}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
