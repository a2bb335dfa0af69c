"""Every kernel a tuning record schedules, against the hand-written schedule it replaced, side by side.

    python benchmarks/tuned_vs_hand.py                       # the benchmark models, the shipped tuning_logs/
    python benchmarks/tuned_vs_hand.py --models shufflenet --tuning-db /tmp/tuning --rounds 21

Each model is compiled twice, with the records (as ``dlc compile`` applies them) and with ``--no-tuning-db``.
Both compiles fuse the graph into the same kernels under the same names, so each tuned kernel is called in
both libraries with the arguments of its first call in the model, alternately, ``--rounds`` times (each
sample >= 5 ms of calls, one thread: ``dlc.tune.verify.side_by_side``, as ``dlc db verify`` times them); the
table gives the medians, hand / tuned, and hand / tuned of each side's fastest round (what decides,
``database.paired_verdict``). This script only reports; ``dlc db verify`` writes the verdicts.
Then the whole model, with and without records, alternately. Writes ``--out`` (markdown + JSON).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import dlc
from dlc.models import BENCH_MODELS, model_path
from dlc.runtime.bench import MachineMonitor, describe_state, machine_info, random_feeds
from dlc.runtime.threads import set_num_threads
from dlc.tune.verify import side_by_side


def compare(name: str, tuning_dbs: tuple[str, ...], rounds: int) -> dict:
    path = model_path(name)
    tuned = dlc.compile(path, tuning_dbs=tuning_dbs)
    hand = dlc.compile(path, tuning_db=False)
    feeds = random_feeds(tuned.inputs)
    origin = {k["name"]: k["origin"] for k in hand.kernels}
    names = sorted(k["name"] for k in tuned.kernels if k["origin"] == "tuned")
    for m in (tuned, hand):
        m.virtual_machine()
    set_num_threads(1)
    rows = []
    for kernel, samples in side_by_side(tuned, hand, names, rounds, feeds).items():
        t, h = (statistics.median(samples[s]) * 1e6 for s in ("tuned", "hand"))
        rows.append({"kernel": kernel, "hand_rule": origin.get(kernel, "?"), "tuned_us": t, "hand_us": h,
                     "hand_over_tuned": h / t, "fastest_hand_over_tuned": min(samples["hand"]) / min(samples["tuned"])})
    e2e = {"tuned": [], "hand": []}
    for m in (tuned, hand):
        m.run(feeds)
    for _ in range(rounds):
        for side, m in (("tuned", tuned), ("hand", hand)):
            t0 = time.perf_counter()
            m.run(feeds)
            e2e[side].append(time.perf_counter() - t0)
    return {"model": name, "kernels": rows, "records_applied": len(names),
            "tuned_ms": statistics.median(e2e["tuned"]) * 1e3, "hand_ms": statistics.median(e2e["hand"]) * 1e3}


def markdown(results: list[dict], header: str) -> str:
    lines = [header, "", "| model | kernel | hand rule | hand us | tuned us | hand / tuned | fastest rounds |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        for k in r["kernels"]:
            lines.append(f"| {r['model']} | `{k['kernel'][:60]}` | {k['hand_rule']} | {k['hand_us']:.1f} | "
                         f"{k['tuned_us']:.1f} | **{k['hand_over_tuned']:.2f}** | {k['fastest_hand_over_tuned']:.2f} |")
    lines += ["", "| model | records applied | no records ms | with records ms | speedup |", "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['records_applied']} | {r['hand_ms']:.2f} | {r['tuned_ms']:.2f} | "
                     f"{r['hand_ms'] / r['tuned_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(BENCH_MODELS), help="comma-separated (default: the benchmark models)")
    p.add_argument("--tuning-db", action="append", default=[], metavar="DIR",
                   help="a database besides the shipped tuning_logs/ (repeatable)")
    p.add_argument("--rounds", type=int, default=15, help="alternating samples per side (default 15)")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results/<date>/tuned_vs_hand)")
    args = p.parse_args(argv)
    set_num_threads(1)
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = Path(args.out or Path(__file__).parent / "results" / stamp.strftime("%Y-%m-%d") / "tuned_vs_hand")
    out.mkdir(parents=True, exist_ok=True)
    results, monitor = [], MachineMonitor().start()
    for name in args.models.split(","):
        results.append(compare(name, tuple(args.tuning_db), args.rounds))
        print(markdown(results[-1:], f"## {name}"), flush=True)
    header = (f"# Tuned kernels against their hand-written schedules ({stamp:%Y-%m-%d %H:%M} UTC)\n\n"
              f"`python benchmarks/tuned_vs_hand.py --models {args.models} --rounds {args.rounds}"
              + "".join(f" --tuning-db {d}" for d in args.tuning_db) + "`; 1 thread, medians of "
              f"alternating samples. Machine: {machine_info(1).get('cpu', '?')}; {describe_state(monitor.stop())}.")
    (out / "results.md").write_text(markdown(results, header))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
