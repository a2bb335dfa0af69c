"""dlc against onnxruntime on the benchmark models, side by side: JSON, a markdown table and PNG charts.

    nice -n 10 python benchmarks/run.py                          # all of dlc.models.BENCH_MODELS
    python benchmarks/run.py --models cnns --threads 2 --repeat 30
    python benchmarks/run.py --models resnet50,squeezenet --layers resnet50
    python benchmarks/run.py --schedules my_rules/ --disable-pass fold-constant   # any `dlc compile` flag

For each model: compile it with dlc (the compile options come from the flags, exactly as ``dlc compile``
takes them), export and load the artifact, then time dlc and onnxruntime in one process, same thread count,
alternating run by run after a warm-up (``dlc.runtime.bench``), and record the machine's state while it
ran. Then profile one model layer by layer (``--layers``) for the per-layer table (GFLOP/s and % of the
measured peak of each conv). See benchmarks/README.md for how to read the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import dlc
from dlc.cli import (  # the same flags as `dlc compile`, from CompileOptions
    _add_compile_options,
    _options_from,
)
from dlc.models import BENCH_CNNS, BENCH_MODELS, model_path
from dlc.runtime.bench import (
    MachineMonitor,
    bench,
    describe_state,
    dlc_runner,
    machine_info,
    onnxruntime_session,
    random_feeds,
)
from dlc.runtime.peak import machine_peak
from dlc.runtime.profile import profile
from dlc.target import host_cpu_count

HERE = Path(__file__).resolve().parent
MODEL_SETS = {"all": BENCH_MODELS, "cnns": BENCH_CNNS}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="all",
                   help=f"comma-separated names or .onnx files, or 'cnns' / 'all' (default all: {', '.join(BENCH_MODELS)})")
    p.add_argument("--threads", type=int, default=host_cpu_count(), help="threads for both (default: all cores)")
    p.add_argument("--repeat", type=int, default=30, help="timed runs per side (default 30; see --budget)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs per side (default 5)")
    p.add_argument("--budget", type=float, default=120.0, metavar="SECONDS",
                   help="cap on timed seconds per model: fewer runs (>= --min-repeat) for slow models (default 120)")
    p.add_argument("--min-repeat", type=int, default=5, help="never fewer timed runs than this (default 5)")
    p.add_argument("--layers", default="resnet50", metavar="MODEL",  # a name or an .onnx file, like --models
                   help="profile this model layer by layer ('none' to skip; default resnet50)")
    p.add_argument("--layer-op", default="conv2d", help="per-layer table: kernels whose op starts with this")
    p.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<date-time>)")
    p.add_argument("--reuse-artifacts", action="store_true",
                   help="reuse OUT/../artifacts/<model>.so when it was compiled with the same options and versions")
    compile_flags = p.add_argument_group("dlc compile options (passed through; e.g. --tuning-db once it exists)")
    _add_compile_options(compile_flags)
    args = p.parse_args(argv)
    names = MODEL_SETS.get(args.models) or tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in names if m not in dlc.models.ALL_MODELS and Path(m).suffix != ".onnx"]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {', '.join(dlc.models.ALL_MODELS)}")
    args.model_names = names
    args.out = args.out or HERE / "results" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return args


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- one model --------------------------------------------------------------------------------------------
def onnx_file(name: str) -> Path:
    """A zoo model's cached file, or ``name`` itself when it is an .onnx path."""
    if Path(name).suffix == ".onnx":
        if not Path(name).is_file():
            raise dlc.ModelError("no such file", where=name)
        return Path(name)
    return model_path(name)


def short_name(name: str) -> str:
    return Path(name).stem if Path(name).suffix == ".onnx" else name


def compiled_artifact(name: str, options: dlc.CompileOptions, artifacts: Path, reuse: bool) -> tuple[Path, float]:
    """(artifact path, compile seconds); compiles unless a matching artifact may be reused."""
    path = artifacts / f"{short_name(name)}.so"
    wanted = json.loads(json.dumps(dlc.api._jsonable(dataclasses.asdict(options))))
    if reuse and path.is_file():
        try:
            meta = dlc.runtime.read_metadata(path)
            if meta.get("options") == wanted and meta.get("versions") == dlc.version.versions():
                say(f"{name}: reusing {path}")
                return path, float(meta["compile_seconds"]["total"])
        except dlc.DlcError:
            pass
    say(f"{name}: compiling")
    model = dlc.compile(onnx_file(name), options=options)
    model.export(path)
    return path, float(model.metadata["compile_seconds"]["total"])


def run_model(name: str, args: argparse.Namespace, options: dlc.CompileOptions, artifacts: Path) -> dict:
    source = onnx_file(name)
    artifact, compile_s = compiled_artifact(name, options, artifacts, args.reuse_artifacts)
    model = dlc.load(artifact, num_threads=args.threads)
    feeds = random_feeds(model.inputs)

    # One timed run each decides how many fit in the budget (slow schedules must not take all day).
    session = onnxruntime_session(source, args.threads)
    run_dlc = dlc_runner(model, feeds)
    run_dlc()
    t0 = time.perf_counter()
    run_dlc()
    t_dlc = time.perf_counter() - t0
    session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    t0 = time.perf_counter()
    session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
    t_pair = t_dlc + time.perf_counter() - t0
    repeat = max(args.min_repeat, min(args.repeat, int(args.budget / t_pair)))
    warmup = max(1, min(args.warmup, int(args.budget / 4 / t_pair)))
    del session
    say(f"{name}: {t_dlc * 1e3:.1f} ms dlc per run; timing {repeat} runs each after {warmup} warm-up")

    result = bench(model, feeds, repeat=repeat, warmup=warmup, threads=args.threads, compare=source)
    origins = Counter(k["origin"].split(":")[0] for k in model.kernels)
    say(f"{name}: dlc {result.dlc.median:.2f} ms, onnxruntime {result.onnxruntime.median:.2f} ms, "
        f"dlc/ORT {result.ratio:.2f} ({describe_state(result.state)})")
    row = {"model": short_name(name), "onnx": str(source), "artifact": str(artifact), "compile_seconds": compile_s,
           "kernels": len(model.kernels), "schedule_origins": dict(origins), "bench": result.to_json()}
    del model
    gc.collect()
    return row


# ---- per-layer ---------------------------------------------------------------------------------------------
def conv_kind(shapes: list[list[int]]) -> str:
    """'3x3 s1' from a conv kernel's (input, weight, ..., output) shapes; '?' if they do not look like one."""
    try:
        data, weight, out = shapes[0], shapes[1], shapes[-1]
        kh, kw = weight[2], weight[3]
        stride = round(data[2] / out[2]) if out[2] else 1
        return f"{kh}x{kw} s{max(stride, 1)}"
    except (IndexError, TypeError, ZeroDivisionError):
        return "?"


def run_layers(name: str, args: argparse.Namespace, options: dlc.CompileOptions, artifacts: Path, out: Path) -> dict:
    artifact, _ = compiled_artifact(name, options, artifacts, reuse=True)
    model = dlc.load(artifact, num_threads=args.threads)
    say(f"{name}: profiling every kernel")
    prof = profile(model, repeat=5, threads=args.threads)
    name = short_name(name)
    prof.plot_roofline(out / f"roofline_{name}.png")
    prof.write_trace(out / f"trace_{name}.json")
    layers = []
    for k in prof.kernels:
        if not k.op.startswith(args.layer_op):
            continue
        layers.append({"kernel": k.name, "kind": conv_kind(k.shapes) if "conv" in k.op else k.op,
                       "shapes": k.shapes, "calls": k.calls, "us": k.us, "percent_of_time": k.percent,
                       "gflop": k.gflop, "gflops": k.gflops, "percent_of_peak": k.percent_of_peak,
                       "schedule": k.origin})
    by_kind: dict[str, dict] = {}
    for layer in layers:  # time-weighted: total FLOP / total time of the group
        g = by_kind.setdefault(layer["kind"], {"gflop": 0.0, "us": 0.0, "layers": 0})
        g["gflop"] += layer["gflop"] * layer["calls"]
        g["us"] += layer["us"]
        g["layers"] += layer["calls"]
    for g in by_kind.values():
        g["gflops"] = g["gflop"] / (g["us"] / 1e6) if g["us"] else 0.0
        g["percent_of_peak"] = 100 * g["gflops"] / prof.peak.gflops if prof.peak else None
    return {"model": name, "op": args.layer_op, "threads": prof.threads, "layers": layers, "by_kind": by_kind,
            "kernel_ms": prof.kernel_ms, "end_to_end_ms": prof.end_to_end_ms.to_json(), "state": prof.state,
            "roofline_png": f"roofline_{name}.png", "trace": f"trace_{name}.json"}


# ---- reports ----------------------------------------------------------------------------------------------
def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _f(v, fmt: str = ".2f", none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def markdown(report: dict) -> str:
    m, peak = report["machine"], report["peak"]
    lines = [
        f"# dlc vs onnxruntime, {report['date']}", "",
        f"- machine: {m['cpu']}, {m['cores']} cores, `{m['target_key']}`; **{report['threads']} threads** for both",
        f"- measured peak ({report['threads']} threads): {peak['gflops']:.0f} GFLOP/s FP32, triad "
        + ", ".join(f"{k} {v:.0f} GB/s" for k, v in peak["bandwidth_gbs"].items())
        + ("" if peak["stable"] else " (measured on a busy machine: a lower bound)"),
        f"- versions: dlc {m['versions']['dlc']}, TVM {m['versions']['tvm']}, onnxruntime "
        f"{m['versions']['onnxruntime']}, onnx {m['versions']['onnx']}",
        f"- compile options: `{json.dumps(report['options'])}`",
        f"- machine state over the whole run: {describe_state(report['state'])}", "",
        "| model | GFLOP | dlc ms | onnxruntime ms | **dlc / ORT** | run-by-run p10-p90 | dlc GFLOP/s (% peak) "
        "| ORT GFLOP/s (% peak) | runs | other procs (cores) | max abs diff | schedules |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["models"]:
        b = row["bench"]
        pr = b["paired_ratio"]
        origins = ", ".join(f"{k} {v}" for k, v in sorted(row["schedule_origins"].items()))
        lines.append(
            f"| {row['model']} | {b['gflop']:.2f} | {b['dlc']['median']:.2f} | {b['onnxruntime']['median']:.2f} "
            f"| **{b['ratio']:.2f}** | {pr['p10']:.2f}-{pr['p90']:.2f} "
            f"| {_f(b['gflops']['dlc'], '.1f')} ({_f(b['percent_of_peak']['dlc'], '.1f')}%) "
            f"| {_f(b['gflops']['onnxruntime'], '.1f')} ({_f(b['percent_of_peak']['onnxruntime'], '.1f')}%) "
            f"| {b['repeat']} | {b['state'].get('other_processes_cores', '-')} | {b['max_abs_diff']:.1e} | {origins} |")
    g = report["geomean"]
    lines += ["", f"**Geomean dlc / onnxruntime**: CNN set {_f(g['cnns'])}, all models {_f(g['all'])}"
              + (f"; worst: {g['worst_model']} {g['worst']:.2f}" if g.get("worst") else ""), ""]
    layers = report.get("layers")
    if layers:
        lines += [f"## Per layer: {layers['model']}, kernels whose op starts with `{layers['op']}`", "",
                  f"Each kernel call timed in place (`dlc profile`); kernels {layers['kernel_ms']:.1f} ms of "
                  f"{layers['end_to_end_ms']['median']:.1f} ms end to end; "
                  f"roofline: `{layers['roofline_png']}`, trace: `{layers['trace']}`.", "",
                  "| kind | layers | GFLOP | ms | GFLOP/s | % of peak |", "|---|---:|---:|---:|---:|---:|"]
        for kind, grp in sorted(layers["by_kind"].items(), key=lambda kv: -kv[1]["us"]):
            lines.append(f"| {kind} | {grp['layers']} | {grp['gflop']:.3f} | {grp['us'] / 1e3:.2f} "
                         f"| {grp['gflops']:.1f} | {_f(grp['percent_of_peak'], '.1f')} |")
        lines += ["", "| kernel | kind | shapes | calls | µs | % time | GFLOP/s | % of peak | schedule |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        for r in layers["layers"]:
            shapes = " ".join("x".join(map(str, s)) for s in r["shapes"][:2])
            lines.append(f"| {r['kernel']} | {r['kind']} | {shapes} | {r['calls']} | {r['us']:,.0f} "
                         f"| {r['percent_of_time']:.1f} | {r['gflops']:.1f} | {_f(r['percent_of_peak'], '.1f')} "
                         f"| {r['schedule']} |")
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = report["models"]
    names = [r["model"] for r in rows]
    ratios = [r["bench"]["ratio"] for r in rows]
    low = [r["bench"]["ratio"] - r["bench"]["paired_ratio"]["p10"] for r in rows]
    high = [r["bench"]["paired_ratio"]["p90"] - r["bench"]["ratio"] for r in rows]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(rows)), 9), dpi=110,
                                  gridspec_kw={"height_ratios": [3, 2]})
    colors = ["tab:green" if r <= 1 else "tab:orange" if r <= 2.5 else "tab:red" for r in ratios]
    ax.bar(names, ratios, color=colors, yerr=[[max(v, 0) for v in low], [max(v, 0) for v in high]], capsize=3)
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(matplotlib.ticker.FormatStrFormatter("%g"))  # 0.5, 2, 4 rather than 5x10^-1
    ax.axhline(1.0, color="black", lw=1)
    g = report["geomean"]
    if g["all"]:
        ax.axhline(g["all"], color="tab:blue", ls="--", lw=1.2, label=f"geomean, all models: {g['all']:.2f}")
    if g["cnns"]:
        ax.axhline(g["cnns"], color="tab:purple", ls=":", lw=1.2, label=f"geomean, CNN set: {g['cnns']:.2f}")
    for i, (r, row) in enumerate(zip(ratios, rows)):
        pct = row["bench"]["percent_of_peak"]["dlc"]
        ax.text(i, max(r, row["bench"]["paired_ratio"]["p90"]) * 1.08, f"{r:.2f}x" + (f"\n{pct:.1f}% pk" if pct is not None else ""), ha="center",
                va="bottom", fontsize=8)
    ax.set_ylabel("latency dlc / onnxruntime (lower is better; bars: p10-p90 run by run)")
    ax.set_title(f"dlc vs onnxruntime, {report['threads']} threads, {report['machine']['cpu']} "
                 f"({report['date']})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.tick_params(axis="x", labelrotation=20)
    top = max([r["bench"]["paired_ratio"]["p90"] for r in rows] + ratios + [2.0]) * 2.5
    ax.set_ylim(min(ratios + [0.5]) / 2, top)

    width = 0.38
    xs = range(len(rows))
    for off, who, color in ((-width / 2, "dlc", "tab:blue"), (width / 2, "onnxruntime", "tab:gray")):
        vals = [r["bench"]["percent_of_peak"][who] or 0 for r in rows]
        ax2.bar([x + off for x in xs], vals, width, label=who, color=color)
    ax2.set_xticks(list(xs), names, rotation=20)
    ax2.set_ylabel("% of measured peak FLOP/s")
    ax2.legend(fontsize=8)
    ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = _options_from(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    artifacts = out.parent / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    say(f"results -> {out}; {len(args.model_names)} models, {args.threads} threads")
    peak = machine_peak(args.threads)
    say(f"peak: {peak.gflops:.0f} GFLOP/s, DRAM {peak.dram_gbs:.1f} GB/s ({args.threads} threads)")
    monitor = MachineMonitor().start()
    rows, failures = [], {}
    for name in args.model_names:
        try:
            rows.append(run_model(name, args, options, artifacts))
        except Exception as e:  # one broken model must not lose the others' numbers
            say(f"{name}: FAILED: {type(e).__name__}: {e}")
            failures[name] = f"{type(e).__name__}: {e}"
    layers = None
    if args.layers != "none":
        try:
            layers = run_layers(args.layers, args, options, artifacts, out)
        except Exception as e:
            say(f"per-layer profile of {args.layers}: FAILED: {type(e).__name__}: {e}")
            failures[f"layers:{args.layers}"] = f"{type(e).__name__}: {e}"
    state = monitor.stop()

    cnn_ratios = [r["bench"]["ratio"] for r in rows if r["model"] in BENCH_CNNS]  # only zoo names count here
    worst = max(rows, key=lambda r: r["bench"]["ratio"], default=None)
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
        "threads": args.threads, "options": dlc.api._jsonable(dataclasses.asdict(options)),
        "machine": machine_info(args.threads), "peak": peak.to_json(), "state": state,
        "models": rows, "failures": failures, "layers": layers,
        "geomean": {"cnns": geomean(cnn_ratios), "all": geomean([r["bench"]["ratio"] for r in rows]),
                    "worst_model": worst["model"] if worst else None,
                    "worst": worst["bench"]["ratio"] if worst else None},
    }
    (out / "results.json").write_text(json.dumps(report, indent=1))
    (out / "results.md").write_text(markdown(report))
    if rows:
        chart(report, out / "ratios.png")
    say(f"wrote {out}/results.json, results.md" + (", ratios.png" if rows else ""))
    print(markdown(report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
