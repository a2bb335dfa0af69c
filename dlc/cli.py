"""The ``dlc`` command: parse, call the API, print. Nothing here compiles or runs anything by itself.

Errors: a ``DlcError`` prints as one line ``dlc: error: ...`` and exits with its code (2 for bad input,
3 for a compile failure); anything else is a dlc bug, printed as one line with a hint; ``--verbose``
shows the traceback in both cases.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from . import api
from ._native import show_tvm_warnings
from .errors import DlcError, InputError
from .options import CompileOptions
from .version import __version__

# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
EXIT_INTERNAL = 70


# ---- helpers ----------------------------------------------------------------------------------------------
def _progress(quiet: bool) -> Callable[[str], None]:
    start = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            err.print(f"[dim]{time.perf_counter() - start:6.1f}s[/] {msg}")

    return say


def _add_compile_options(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per CompileOptions field (see dlc/options.py), except the fields named in ``skip``."""
    for f in CompileOptions.option_fields():
        if f.name in skip:
            continue
        m = f.metadata
        kw = {"dest": f.name, "help": m["help"], "metavar": m["metavar"]}
        if m["action"]:  # default None: "not given" stays distinguishable (the field's default applies)
            kw = {"dest": f.name, "help": m["help"], "action": m["action"], "default": None}
        elif m["repeat"]:
            kw["action"] = "append"
        if m["choices"]:
            kw["choices"] = m["choices"]
        p.add_argument(m["flag"], **kw)


def _options_from(args: argparse.Namespace) -> CompileOptions:
    values = {}
    for f in CompileOptions.option_fields():
        raw = getattr(args, f.name, None)
        if raw is None:
            continue
        parse = f.metadata["parse"]
        if f.metadata["repeat"]:
            items = [parse(r) if parse else r for r in raw]
            values[f.name] = dict(items) if f.default_factory is dict else tuple(items)
        else:
            values[f.name] = parse(raw) if parse else raw
    return CompileOptions(**values)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temp file in the same folder, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def print_kernels(rows: list[dict], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col, just in (("kernel", "left"), ("blocks", "left"), ("shapes", "left"), ("schedule", "left"),
                      ("GFLOP", "right")):
        table.add_column(col, justify=just, overflow="fold", no_wrap=col in ("kernel", "schedule"))
    for r in rows:
        shapes = " ".join("x".join(map(str, s)) for s in r["shapes"])
        table.add_row(r["name"], r["blocks"], shapes, r["origin"], f"{r['gflop']:.3f}")
    out.print(table)


# ---- commands ---------------------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    if args.list_passes:
        from .passes import PASSES
        from .pipeline import phases
        from .target import resolve_target

        target = resolve_target(args.target or "llvm")
        table = Table(title=f"passes for {target.kind.name}, by phase", title_justify="left")
        for col in ("phase", "pass", "what it does"):
            table.add_column(col)
        for phase in phases(target):
            for name in phase.passes:
                table.add_row(phase.name, name + (" (required)" if PASSES[name].required else ""), PASSES[name].doc)
        out.print(table)
        return 0
    if not args.model:
        raise DlcError("compile needs a MODEL.onnx (or --list-passes)")
    options = _options_from(args)
    output = Path(args.output or Path(args.model).with_suffix(".so").name)
    say = _progress(args.quiet)
    model = api.compile(args.model, options=options, log=say)
    if args.explain:
        print_kernels(model.kernels, f"{len(model.kernels)} kernels, {model.target['key']}")
    say(f"writing {output}")
    model.export(output)
    secs = model.metadata["compile_seconds"]["total"]
    err.print(f"compiled {args.model} for {model.target['key']} in {secs:.1f}s -> {output} "
              f"({output.stat().st_size / 1e6:.1f} MB, {len(model.kernels)} kernels)")
    return 0


def _parse_inputs(specs: Sequence[str], input_names: list[str]) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in specs:
        name, sep, path = spec.rpartition("=")
        if not sep:
            if len(input_names) != 1:
                raise InputError(f"--input {spec}: give NAME=FILE.npy; the model's inputs are {input_names}")
            name, path = input_names[0], spec
        if name in feeds:
            raise InputError(f"--input {name} given twice")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise InputError(f"--input {name}: no such file {path!r}") from None
        except (ValueError, OSError, EOFError) as e:  # EOFError: an empty file
            raise InputError(f"--input {name}: {path!r} is not a .npy array ({e})") from None
        if not isinstance(feeds[name], np.ndarray):
            raise InputError(f"--input {name}: {path!r} holds several arrays (.npz); give one .npy per input")
    return feeds


def cmd_run(args: argparse.Namespace) -> int:
    model = api.load(args.artifact, num_threads=args.threads)
    feeds = _parse_inputs(args.input or [], [t.name for t in model.inputs])
    t0 = time.perf_counter()
    outputs = model.run(feeds)
    ms = (time.perf_counter() - t0) * 1e3
    table = Table(title=f"{model.metadata['model']} on {model.target['key']}, {model.num_threads} threads, "
                        f"{ms:.1f} ms (first run)", title_justify="left")
    for col in ("output", "dtype", "shape", "min", "max", "mean", "first values"):
        table.add_column(col)
    for name, a in outputs.items():
        flat = a.reshape(-1)
        stats = [f"{flat.min():.4g}", f"{flat.max():.4g}", f"{flat.mean():.4g}"] if flat.size and a.dtype.kind in "fiub" \
            else ["", "", ""]
        table.add_row(name, str(a.dtype), str(tuple(a.shape)), *stats, " ".join(f"{v:.4g}" for v in flat[:4]))
    out.print(table)
    if args.output:
        _write_atomic(Path(args.output), lambda tmp: np.savez(tmp, **outputs))
        err.print(f"wrote {len(outputs)} outputs to {args.output}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.suffix == ".so":
        from .runtime import read_metadata

        meta = read_metadata(path)
        if args.json:
            out.print_json(json.dumps(meta))
        else:
            out.print(f"[bold]{path}[/]: dlc artifact of {meta['model']} for {meta['target']['key']}, "
                      f"dlc {meta['versions']['dlc']}, TVM {meta['versions']['tvm']}")
            for kind in ("inputs", "outputs"):
                for t in meta["signature"][kind]:
                    out.print(f"  {kind[:-1]:6} {t['name']}: {t['dtype']} {tuple(t['shape'])}")
            print_kernels(meta.get("kernels", []), "kernels")
        return 0
    from .frontend import load_model, summarize

    summary = summarize(load_model(path, check=False))
    if args.json:
        out.print_json(json.dumps(summary.to_json()))
        return 0 if not summary.unsupported else 1
    out.print(f"[bold]{summary.source}[/]: ONNX IR {summary.ir_version}, opsets "
              + ", ".join(f"{d} {v}" for d, v in summary.opsets.items())
              + (f", producer {summary.producer}" if summary.producer else ""))
    out.print(f"  {summary.num_nodes} nodes, {summary.num_params:,} parameters ({summary.param_bytes / 1e6:.1f} MB)")
    for kind, specs in (("input", summary.inputs), ("output", summary.outputs)):
        for t in specs:
            out.print(f"  {kind:6} {t.name}: {t.dtype} {t.shape_str()}")
    table = Table(title="operators", title_justify="left")
    table.add_column("op")
    table.add_column("count", justify="right")
    table.add_column("dlc")
    for op, n in summary.op_counts.items():
        table.add_row(op, str(n), "[red]unsupported[/]" if op in summary.unsupported else "ok")
    out.print(table)
    if summary.unsupported:
        for op, nodes in summary.unsupported.items():
            out.print(f"[red]unsupported[/] {op}: nodes {', '.join(nodes)}")
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from . import tune
    from .tune.report import LiveProgress, plot_curve, results_table

    options = _options_from(args)
    rpc = tune.RPCSettings.parse(args.rpc_tracker, args.rpc_key, args.timeout) if args.rpc_tracker else None
    if args.rpc_key and not args.rpc_tracker:
        raise DlcError("--rpc-key needs --rpc-tracker HOST:PORT")
    config = tune.TuneConfig(trials=args.trials, db=args.db, tasks=args.tasks, rpc=rpc, timeout=args.timeout,
                             batch=args.batch, population=args.population, seed=args.seed,
                             threads=args.threads)
    report = tune.tune(args.model, options, config, progress=LiveProgress(err), log=_progress(args.quiet),
                       command="dlc " + shlex.join(args.argv))
    out.print(results_table(report))
    if args.plot != "none":
        plot = Path(args.plot or f"{Path(args.model).stem}.{report.key}.tuning.png")
        err.print(f"tuning curve: {plot_curve(report, plot)}")
    err.print(f"records: {report.folder}" + (" (interrupted: rerun the same command to resume)"
                                              if report.interrupted else ""))
    if report.interrupted:
        return 130
    tried = [r for r in report.results if not r.status.startswith("skipped")]
    return 1 if tried and all(r.status.startswith("failed") for r in tried) else 0


def cmd_db(args: argparse.Namespace) -> int:
    from .tune import dbtools

    root = args.db or str(_shipped_logs())
    if args.db_command in ("stats", "list"):
        from .tune.report import db_list_table, db_stats_table

        rows = (dbtools.stats if args.db_command == "stats" else dbtools.list_workloads)(root, args.target)
        if args.json:
            out.print_json(json.dumps(rows))
        else:
            out.print((db_stats_table if args.db_command == "stats" else db_list_table)(rows, root))
    elif args.db_command == "merge":
        for key, n in dbtools.merge(args.sources, root).items():
            err.print(f"{key}: {n} records added to {root}")
    elif args.db_command == "prune":
        for key, n in dbtools.prune(root, args.top, args.target).items():
            err.print(f"{key}: dropped {n} records, kept the {args.top} best per workload")
    elif args.db_command == "export":
        for path in dbtools.export(root, args.out, args.top, args.target, faster_only=args.faster_only):
            err.print(f"exported {path}")
    elif args.db_command == "verify":
        from .tune.report import verify_table
        from .tune.verify import verify

        options = CompileOptions(target=args.target or "llvm", tuning_dbs=(args.db,) if args.db else ())
        rows = verify(args.model, options, rounds=args.rounds, threads=args.threads, say=_progress(False))
        out.print(verify_table(rows))
        lost = sum(not r["wins"] for r in rows)
        err.print(f"{len(rows) - lost} records won side by side and apply; {lost} lost and no longer apply")
    return 0


def _shipped_logs() -> Path:
    from ._builtin import tuning_logs_dir

    return tuning_logs_dir()


def _model_to_measure(args: argparse.Namespace, say: Callable[[str], None]):
    """(CompiledModel, the ONNX file it came from or None) for ``bench``/``profile``: load or compile."""
    path = Path(args.model)
    if path.suffix == ".so":
        if any(getattr(args, f.name) is not None for f in CompileOptions.option_fields()):
            raise DlcError(f"compile options (--target, --input-shape, ...) apply to an ONNX model; "
                           f"{path} is already compiled")
        model = api.load(path, num_threads=args.threads)
        from .runtime.bench import find_onnx_for

        source = Path(args.onnx) if getattr(args, "onnx", None) else find_onnx_for(path, model.metadata)
        if source is not None and not source.is_file():
            raise InputError("no such ONNX file", where=str(source))
        return model, source
    say(f"compiling {path} (give an artifact .so to skip this)")
    model = api.compile(path, options=_options_from(args), log=say)
    return model, path


def _feeds_for(model, specs: list[str] | None):
    from .runtime.bench import random_feeds

    return _parse_inputs(specs, [t.name for t in model.inputs]) if specs else random_feeds(model.inputs)


def _write_json(path: str, data: dict) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=1))
        tmp.chmod(0o644)  # mkstemp makes it private; a report is for reading

    _write_atomic(Path(path), write)
    err.print(f"wrote {path}")


def cmd_bench(args: argparse.Namespace) -> int:
    from .runtime.bench import bench, describe_state

    say = _progress(args.quiet)
    model, source = _model_to_measure(args, say)
    if args.compare and source is None:
        raise DlcError(f"--compare {args.compare} on an artifact needs the ONNX model it was compiled from: "
                       "add --onnx MODEL.onnx")
    result = bench(model, _feeds_for(model, args.input), repeat=args.repeat, warmup=args.warmup,
                   threads=args.threads, compare=source if args.compare else None, log=say)
    title = (f"{result.model} on {model.target['key']}, {result.threads} threads, {result.repeat} runs after "
             f"{result.warmup} warm-up" + (" (interleaved with onnxruntime)" if result.onnxruntime else ""))
    table = Table(title=title, title_justify="left")
    for col in ("runtime", "min ms", "median ms", "p90 ms", "GFLOP/s", "% of peak"):
        table.add_column(col, justify="left" if col == "runtime" else "right")
    for name, stats in (("dlc", result.dlc), ("onnxruntime", result.onnxruntime)):
        if stats is None:
            continue
        gflops, pct = result.gflops(name), result.percent_of_peak(name)
        table.add_row(name, f"{stats.min:.3f}", f"{stats.median:.3f}", f"{stats.p90:.3f}",
                      f"{gflops:.1f}" if gflops else "-", f"{pct:.1f}" if pct else "-")
    out.print(table)
    if result.ratio is not None:
        pr = result.paired_ratio
        out.print(f"[bold]dlc / onnxruntime = {result.ratio:.3f}[/] (ratio of medians; run by run: median "
                  f"{pr.median:.3f}, p10-p90 {pr.p10:.3f}-{pr.p90:.3f}); outputs differ by at most "
                  f"{result.max_abs_diff:.2g}")
    m = result.machine
    out.print(f"machine: {m['cpu']}, {m['cores']} cores; {describe_state(result.state)}; "
              f"{result.gflop:.3f} GFLOP per run; peak {result.peak_gflops or 0:.0f} GFLOP/s; dlc "
              f"{m['versions']['dlc']}, TVM {m['versions']['tvm']}"
              + (f", onnxruntime {m['versions']['onnxruntime']}" if result.onnxruntime else ""))
    if args.json:
        _write_json(args.json, result.to_json())
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from .runtime.bench import describe_state
    from .runtime.profile import profile

    say = _progress(args.quiet)
    model, _ = _model_to_measure(args, say)
    prof = profile(model, _feeds_for(model, args.input), repeat=args.repeat, threads=args.threads, stat=args.stat,
                   log=say)
    peak = prof.peak
    rows = prof.table(args.top)
    table = Table(title=f"{prof.model} on {prof.target}, {prof.threads} threads: {len(prof.kernels)} kernels, "
                        f"sorted by time (each call timed in place, {args.stat} of {args.repeat})",
                  title_justify="left")
    for col in rows[0] if rows else ():
        table.add_column(col, justify="left" if col in ("kernel", "op", "shapes", "schedule") else "right",
                         overflow="fold", no_wrap=col in ("kernel", "schedule"))
    for r in rows:
        table.add_row(*r.values())
    out.print(table)
    if args.top is not None and len(prof.kernels) > args.top:
        rest = prof.kernels[args.top:]
        out.print(f"... {len(rest)} more kernels, {sum(k.percent for k in rest):.1f}% of the kernel time")
    e2e = prof.end_to_end_ms
    rate = prof.gflop / (e2e.median / 1e3)
    out.print(f"end to end {e2e.median:.2f} ms (median of {e2e.n} runs), of which kernels {prof.kernel_ms:.2f} ms "
              f"(sum of the in-place medians; the rest is the VM: allocation, shape checks, calls); "
              f"{prof.gflop:.3f} GFLOP, {rate:.1f} GFLOP/s" + (f" = {100 * rate / peak.gflops:.1f}% of peak" if peak else ""))
    if peak:
        bw = ", ".join(f"{k} {v:.0f}" for k, v in peak.bandwidth_gbs.items())
        out.print(f"peak: {peak.gflops:.0f} GFLOP/s FP32 on {peak.threads} threads (FMA kernel), bandwidth GB/s: "
                  f"{bw} (triad){'' if peak.stable else '; measured on a busy machine'}")
    out.print(f"machine: {describe_state(prof.state)}")
    if not prof.outputs_unchanged:
        err.print("[yellow]note:[/] the outputs changed after timing kernels in place: some kernel writes into "
                  "its own input, so its timings ran on modified data")
    if args.png:
        err.print(f"wrote {prof.plot_roofline(args.png)}")
    if args.trace:
        err.print(f"wrote {prof.write_trace(args.trace)}")
    if args.json:
        _write_json(args.json, prof.to_json())
    return 0


def cmd_peak(args: argparse.Namespace) -> int:
    from .runtime.peak import cache_path, machine_peak
    from .target import host_cpu_count

    threads = args.threads or host_cpu_count()
    say = _progress(args.quiet)
    say(f"measuring this machine's peak on {threads} threads (cached in {cache_path(threads)})")
    peak = machine_peak(threads, remeasure=args.remeasure)
    if args.json:
        out.print_json(json.dumps(peak.to_json()))
        return 0
    out.print(f"{peak.cpu}, {peak.threads} threads ({peak.target_key}):")
    out.print(f"  FP32 peak   {peak.gflops:8.1f} GFLOP/s   (best window {peak.gflops_window:.1f}, median window "
              f"{peak.gflops_median:.1f}, per CPU-second x threads {peak.gflops_cpu_time:.1f})")
    for level, bw in peak.bandwidth_gbs.items():
        out.print(f"  {level:4} triad  {bw:8.1f} GB/s      (median window {peak.bandwidth_median_gbs.get(level, 0):.1f})")
    out.print(f"  {'stable' if peak.stable else 'UNSTABLE (busy machine): re-measured when next asked, best kept'}; "
              f"{peak.measurements} measurement(s), last {peak.measured}")
    return 0

def cmd_check(args: argparse.Namespace) -> int:
    from .check import check
    from .frontend import load_model, summarize

    feeds = None
    if args.input:
        names = [t.name for t in summarize(load_model(args.model, check=False)).inputs]
        feeds = _parse_inputs(args.input, names)
    result = check(args.model, options=_options_from(args), feeds=feeds, tolerance=args.tolerance,
                   seed=args.seed, log=_progress(args.quiet))
    table = Table(title=f"{result.model} on {result.device} ({result.target_key}) vs onnxruntime (CPU)",
                  title_justify="left")
    for col in ("output", "dtype", "shape", "max abs error", "error / scale", "tolerance", ""):
        table.add_column(col, justify="right" if "error" in col or col == "tolerance" else "left")
    for o in result.outputs:
        table.add_row(o.name, o.dtype, str(o.shape), f"{o.max_abs_error:.3g}",
                      "exact" if o.exact else f"{o.error:.3g}", "0" if o.exact else f"{o.tolerance:g}",
                      "[green]ok[/]" if o.ok else "[red]MISMATCH[/]")
    out.print(table)
    timing = f", {result.latency_ms:.3f} ms a run (median)" if result.latency_ms is not None else ""
    out.print(f"[bold]{result.verdict}[/]: max error {result.max_error:.3g} of the output's scale{timing}")
    return 0 if result.ok else 1


# ---- entry point ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlc", description="Compile ONNX models to native code with TVM.")
    parser.add_argument("--version", action="version", version=f"dlc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and TVM's own messages")
        return p

    p = command("compile", "compile an ONNX model into one .so artifact")
    p.add_argument("model", nargs="?", metavar="MODEL.onnx")
    p.add_argument("-o", "--output", metavar="OUT.so", help="artifact path (default: MODEL.so here)")
    _add_compile_options(p)
    p.add_argument("--explain", action="store_true", help="print one row per kernel: blocks, shapes, schedule")
    p.add_argument("--list-passes", action="store_true", help="list the graph passes and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_compile)

    p = command("run", "run an artifact on .npy inputs")
    p.add_argument("artifact", metavar="ARTIFACT.so")
    p.add_argument("-i", "--input", action="append", metavar="NAME=FILE.npy",
                   help="an input array; repeat per input (NAME= may be left out for one-input models)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="save the outputs, keyed by ONNX output name")
    p.add_argument("--threads", type=int, metavar="N", help="runtime threads (default: all cores)")
    p.set_defaults(func=cmd_run)

    p = command("check", "compile, run on the target's device, compare with onnxruntime (the first command to "
                         "run on new hardware); exits 1 on a mismatch, 4 if the device is not here")
    p.add_argument("model", metavar="MODEL.onnx")
    _add_compile_options(p)
    p.add_argument("-i", "--input", action="append", metavar="NAME=FILE.npy",
                   help="an input array (default: random inputs); repeat per input")
    p.add_argument("--tolerance", type=float, metavar="E",
                   help="largest error allowed, relative to the output's scale (default: 1e-3 for fp32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_check)

    p = command("inspect", "describe an ONNX model (ops, shapes, what dlc cannot import) or a dlc artifact")
    p.add_argument("path", metavar="MODEL.onnx|ARTIFACT.so")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = command("tune", "tune a model's kernels with MetaSchedule into a tuning database (see README, Tuning)")
    p.add_argument("model", metavar="MODEL.onnx")
    _add_compile_options(p, skip=("tuning_db", "tuning_dbs"))
    p.add_argument("--trials", type=int, default=64, metavar="N", help="measured candidates per kernel (default 64)")
    p.add_argument("--db", metavar="DIR", help="database root; records go to DIR/<target key>/ "
                   "(default: the shipped tuning_logs/)")
    p.add_argument("--tasks", metavar="PATTERN", help="only kernels whose name matches this glob (or re:REGEX)")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on the machine behind this TVM RPC tracker")
    p.add_argument("--rpc-key", metavar="KEY", help="the key the RPC server registered with")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds allowed per build, per measurement and per RPC step (default 60)")
    p.add_argument("--batch", type=int, default=32, metavar="N", help="candidates per search round (default 32)")
    p.add_argument("--population", type=int, default=512, metavar="N",
                   help="evolutionary search population (default 512)")
    p.add_argument("--seed", type=int, metavar="N", help="seed the search (default: random)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads of each measured kernel on this machine (default: all cores, as dlc run)")
    p.add_argument("--plot", metavar="FILE.png", help="tuning-curve PNG (default MODEL.<key>.tuning.png; 'none': no plot)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_tune)

    p = command("db", "inspect and maintain tuning databases")
    dbs = p.add_subparsers(dest="db_command", required=True)
    for name, help in (("stats", "per target key: workloads, records, failed and corrupt lines, runs"),
                       ("list", "one row per workload: blocks, shapes, records, best latency"),
                       ("merge", "add the records of other databases (no duplicates)"),
                       ("prune", "keep the K fastest records per workload"),
                       ("export", "write a clean copy: the K best records per workload, renumbered"),
                       ("verify", "time each record a compile of MODEL applies against the schedule it replaces, "
                                  "in the model; the verdict decides whether it still applies")):
        q = dbs.add_parser(name, help=help, description=help)
        q.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
        q.add_argument("--db", metavar="DIR", help="database root (default: the shipped tuning_logs/)")
        if name in ("stats", "list", "prune", "export", "verify"):
            q.add_argument("--target", metavar="T", help="only this target's records (e.g. llvm, cuda:sm_80)")
        if name in ("stats", "list"):
            q.add_argument("--json", action="store_true", help="machine-readable output")
        if name in ("prune", "export"):
            q.add_argument("--top", type=int, default=1, metavar="K", help="records kept per workload (default 1)")
        if name == "verify":
            q.add_argument("model", metavar="MODEL.onnx")
            q.add_argument("--rounds", type=int, default=9, metavar="N",
                           help="alternating timings of each kernel per side (default 9)")
            q.add_argument("--threads", type=int, metavar="N", help="runtime threads (default: all cores)")
        if name == "merge":
            q.add_argument("sources", nargs="+", metavar="SRC", help="database roots to merge into --db")
        if name == "export":
            q.add_argument("out", metavar="OUT", help="directory to write OUT/<target key>/ into")
            q.add_argument("--faster-only", action="store_true",
                           help="only workloads whose best record beat every timing of the untuned schedule "
                                "(what a compile would apply); for shipping")
        q.set_defaults(func=cmd_db)


    p = command("bench", "time a model (an artifact, or an ONNX model compiled first), optionally against onnxruntime")
    p.add_argument("model", metavar="ARTIFACT.so|MODEL.onnx")
    p.add_argument("--compare", choices=["onnxruntime"], help="also run this runtime, interleaved run by run")
    p.add_argument("--onnx", metavar="MODEL.onnx", help="the ONNX model for --compare when timing an artifact")
    p.add_argument("--repeat", type=int, default=50, metavar="N", help="timed runs (each side; default 50)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed runs first (default 5)")
    p.add_argument("--threads", type=int, metavar="N", help="threads, for dlc and onnxruntime (default: all cores)")
    p.add_argument("-i", "--input", action="append", metavar="NAME=FILE.npy", help="an input (default: random)")
    p.add_argument("--json", metavar="OUT.json", help="write every number, the samples and the machine state")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_compile_options(p)
    p.set_defaults(func=cmd_bench)

    p = command("profile", "time every kernel of a model: table, roofline plot, Chrome trace")
    p.add_argument("model", metavar="MODEL.onnx|ARTIFACT.so")
    p.add_argument("--png", metavar="OUT.png", help="draw the roofline (intensity against GFLOP/s) here")
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome trace (chrome://tracing, Perfetto)")
    p.add_argument("--json", metavar="OUT.json", help="write the whole profile as JSON")
    p.add_argument("--repeat", type=int, default=5, metavar="N", help="samples per kernel call (default 5)")
    p.add_argument("--threads", type=int, metavar="N", help="runtime threads (default: all cores)")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="a call's time from its samples: median (default), or min on a busy machine")
    p.add_argument("--top", type=int, default=30, metavar="N", help="rows to print (default 30)")
    p.add_argument("-i", "--input", action="append", metavar="NAME=FILE.npy", help="an input (default: random)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_compile_options(p)
    p.set_defaults(func=cmd_profile)

    p = command("peak", "measure (or show the cached) peak FP32 FLOP/s and memory bandwidth of this machine")
    p.add_argument("--threads", type=int, metavar="N", help="threads (default: all cores)")
    p.add_argument("--remeasure", action="store_true", help="measure again (the cache keeps the best)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_peak)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_tvm_warnings(args.verbose)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return args.func(args)
    except DlcError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"dlc: error: {e}", file=sys.stderr)  # plain print: one line, never wrapped
        return e.exit_code
    except KeyboardInterrupt:
        print("dlc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in dlc or TVM: still one line unless asked
        if args.verbose:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"dlc: internal error: {type(e).__name__}: {first} (rerun with --verbose for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
